"""FIX 4.4 tag=value framing, parsing and encoding (Sans-I/O: bytes in, bytes out).

``Framer.feed(data)`` cuts a TCP byte stream into messages: it checks BeginString,
BodyLength and CheckSum; a frame that fails is skipped up to the next ``8=FIX`` and
reported as ``Garbled`` (the FIX spec says to ignore such messages, not to reject them).
A well-framed message whose fields are malformed (a tag that is not a number, no ``=``)
comes out as ``Message`` with ``error`` set, so the session can answer with a Reject.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

SOH = b"\x01"
BEGIN = b"8=FIX.4.4\x01"
MAX_BODY = 1 << 16


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
    def __init__(self):
        self.buf = b""

    def feed(self, data: bytes) -> list[Message | Garbled]:
        self.buf += data
        out: list[Message | Garbled] = []
        while self.buf:
            buf = self.buf
            if not buf.startswith(BEGIN[:len(buf)] if len(buf) < len(BEGIN) else BEGIN):
                nxt = buf.find(b"8=FIX", 1)
                junk, self.buf = (buf, b"") if nxt < 0 else (buf[:nxt], buf[nxt:])
                out.append(Garbled(junk, "does not start with 8=FIX.4.4"))
                continue
            if len(buf) < len(BEGIN) + 3:
                break
            end9 = buf.find(SOH, len(BEGIN))
            if end9 < 0:
                if len(buf) > len(BEGIN) + 12:
                    out.append(self._skip("no BodyLength"))
                    continue
                break
            tag9 = buf[len(BEGIN):end9]
            if not tag9.startswith(b"9=") or not tag9[2:].isdigit() or \
                    int(tag9[2:]) > MAX_BODY:
                out.append(self._skip("bad BodyLength"))
                continue
            body_start = end9 + 1
            body_end = body_start + int(tag9[2:])
            total = body_end + 7  # 10=NNN<SOH>
            if len(buf) < total:
                break
            trailer = buf[body_end:total]
            if not (trailer.startswith(b"10=") and trailer.endswith(SOH) and
                    trailer[3:6].isdigit()):
                out.append(self._skip("bad trailer (BodyLength wrong?)"))
                continue
            raw = buf[:total]
            self.buf = buf[total:]
            if int(trailer[3:6]) != checksum(buf[:body_end]):
                out.append(Garbled(raw, "bad CheckSum"))
                continue
            msg = parse_fields(buf[body_start:body_end])
            msg.raw = raw
            out.append(msg)
        return out

    def _skip(self, reason: str) -> Garbled:
        nxt = self.buf.find(b"8=FIX", 1)
        junk, self.buf = (self.buf, b"") if nxt < 0 else (self.buf[:nxt], self.buf[nxt:])
        return Garbled(junk, reason)


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
