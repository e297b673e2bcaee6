"""FIX 4.4 tag=value framing, parsing and encoding (Sans-I/O: bytes in, bytes out).

``Framer.feed(data)`` cuts a TCP byte stream into messages with the initiator's framing
(``pipeline.fix.codec.frame``: BeginString, BodyLength, CheckSum); a frame that fails is
skipped up to the next ``8=FIX`` and reported as ``Garbled`` (the FIX spec says to ignore
such messages, not to reject them).
A well-framed message whose fields are malformed (a tag that is not a number, no ``=``)
comes out as ``Message`` with ``error`` set, so the session can answer with a Reject.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.fix import codec as C

SOH = b"\x01"
BEGIN = b"8=FIX.4.4\x01"
GARBLED = "bad BeginString, BodyLength or CheckSum"


@dataclass
class Message:
    raw: bytes
    fields: list[tuple[int, bytes]] = field(default_factory=list)
    error: str = ""  # malformed content: answer with Reject
    bad_tag: int = 0
    _map: dict[int, bytes] | None = None

    def get(self, tag: int, default: str | None = None) -> str | None:
        if self._map is None:
            self._map = {}
            for t, v in self.fields:
                self._map.setdefault(t, v)
        v = self._map.get(tag)
        return default if v is None else v.decode("latin-1")

    @property
    def msg_type(self) -> str:
        return self.get(35, "")


@dataclass
class Garbled:
    raw: bytes
    reason: str


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


_FIELD = re.compile(rb"([1-9][0-9]*)=([^\x01]*)\x01")


def parse_fields(body: bytes) -> Message:
    pairs = _FIELD.findall(body)
    if sum(len(t) + len(v) + 2 for t, v in pairs) == len(body):  # all of it is tag=value
        return Message(b"", [(int(t), v) for t, v in pairs])
    msg = Message(b"")
    for part in body.split(SOH):
        if not part:
            continue
        tag, eq, value = part.partition(b"=")
        if not eq or not tag.isdigit():
            msg.error = f"malformed field {part[:20]!r}"
            break
        t = int(tag)
        if t == 0:
            msg.error = "tag 0"
            break
        msg.fields.append((t, value))
    return msg


class Framer:
    """Cuts a byte stream into messages with the initiator's jitted framing
    (``pipeline.fix.codec.frame``/``resync``): one definition of a valid frame."""

    def __init__(self):
        self.buf = b""

    def feed(self, data: bytes) -> list[Message | Garbled]:
        self.buf += data
        arr = np.frombuffer(self.buf, np.uint8)
        out: list[Message | Garbled] = []
        pos, end = 0, len(self.buf)
        junk = -1  # start of a run of garbled bytes: reported as one Garbled
        while pos < end:
            n = C.frame(arr, pos, end)
            if n == C.GARBLED:
                junk = pos if junk < 0 else junk
                pos = self._resync(arr, pos, end)
                continue
            if junk >= 0:
                out.append(Garbled(self.buf[junk:pos], GARBLED))
                junk = -1
            if n == C.NEED_MORE:
                break
            raw = self.buf[pos:pos + n]
            msg = parse_fields(raw[raw.index(SOH, len(BEGIN)) + 1:n - 7])
            msg.raw = raw
            out.append(msg)
            pos += n
        if junk >= 0:
            out.append(Garbled(self.buf[junk:pos], GARBLED))
        self.buf = self.buf[pos:]
        return out

    def _resync(self, arr: np.ndarray, pos: int, end: int) -> int:
        """The next ``8=FIX``; of a tail too short to tell, only what can still begin one
        is kept (so a garbled last message is reported now, not with the next one)."""
        nxt = C.resync(arr, pos, end)
        while nxt < end and nxt + 5 > end and not b"8=FIX".startswith(self.buf[nxt:end]):
            nxt += 1
        return nxt


def sending_time(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    s, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(s)) + f".{rem // 1_000_000:03d}"


def encode(msg_type: str, sender: str, target: str, seq: int, body: list[tuple[int, object]],
           header_extra: list[tuple[int, object]] = (), stime: str | None = None) -> bytes:
    """A complete message: standard header, ``body`` fields in order, trailer."""
    parts = [f"35={msg_type}", f"49={sender}", f"56={target}", f"34={seq}",
             f"52={stime or sending_time()}"]
    parts += [f"{t}={v}" for t, v in header_extra]
    parts += [f"{t}={v}" for t, v in body]
    payload = ("\x01".join(parts) + "\x01").encode("latin-1")
    head = b"8=FIX.4.4\x019=" + str(len(payload)).encode() + SOH
    msg = head + payload
    return msg + b"10=%03d\x01" % checksum(msg)
