"""Capture files -> one contiguous byte buffer with per-message offsets (cold path).

Two formats are read:

- ``<recv_ns> <raw>`` per line, gzip or plain (what ``hft capture`` and hftbacktest's
  collector write). A REST snapshot line carries no symbol: it belongs to the file's one
  symbol, found from the file's depth events. A binary WebSocket frame (Binance SBE) is
  written ``<recv_ns> b64:<base64 of the frame>`` (``BINARY_TAG``): no JSON value starts
  with ``b``, so text lines read exactly as before; ``Capture.binary`` marks those rows.
  (hftbacktest reads text lines only: keep SBE sessions in their own files.)
- cryptofeed's sample pair: ``NAME.ws.*`` (``<unix s>: <frame>`` lines after a URL line)
  and ``NAME.http.*`` (``<url> -> <unix s>: <body>``; the symbol is in the URL). The
  sibling ``.http.`` file is picked up automatically; lines are merged by receive time.

Several files given together continue one stream. The result is a ``Capture``: ``data``
(uint8), ``start``/``end``/``recv_ns`` per message and ``snap_symbol`` (the symbol a
snapshot belongs to, '' where the message names its own). The hot loop in ``replay`` then
walks it without a Python object per message.

A file that cannot be read as a capture (truncated gzip, not a capture at all, no message)
raises ``CaptureError``: one line naming the file, the line where there is one, and what
to do.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

_SYMBOL_IN_DEPTH = re.compile(rb'"e"\s*:\s*"depthUpdate".*?"s"\s*:\s*"([^"]+)"')
BINARY_TAG = b"b64:"  # a line's payload that is a base64 binary frame (SBE)
LINE_FORMAT = ("'<recv_ns> <raw message>' lines (hft capture), or a cryptofeed "
               "NAME.ws.* file")


class CaptureError(ValueError):
    """A file that is not a readable capture: ``str`` is the one line to show."""


def binary_line(recv_ns: int, frame: bytes) -> bytes:
    """The capture line of a binary frame."""
    return b"%d %s%s\n" % (recv_ns, BINARY_TAG, base64.b64encode(frame))


@dataclass
class Capture:
    data: np.ndarray  # uint8: every raw message back to back
    start: np.ndarray  # int64 per message
    end: np.ndarray
    recv_ns: np.ndarray
    snap_symbol: list[str]  # per message: owner of a symbol-less snapshot, else ''
    binary: np.ndarray | None = None  # bool per message: an SBE frame (default: none)

    def __post_init__(self) -> None:
        if self.binary is None:
            self.binary = np.zeros(len(self.start), np.bool_)

    def __len__(self) -> int:
        return len(self.start)

    def raw(self, i: int) -> bytes:
        return self.data[self.start[i]: self.end[i]].tobytes()

    @property
    def nbytes(self) -> int:
        return int((self.end - self.start).sum())


def _open_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (EOFError, OSError, zlib.error) as e:
            raise CaptureError(f"{path}: damaged or truncated gzip ({e}); copy the file "
                               "again, or keep what is readable with 'zcat FILE > "
                               "FILE.txt' and replay that") from None
    return path.read_bytes()


def _not_a_capture(path: Path, lineno: int, what: str) -> CaptureError:
    return CaptureError(f"{path}:{lineno}: not a capture line ({what}); expected "
                        f"{LINE_FORMAT}")


def _is_cryptofeed(path: Path) -> bool:
    return ".ws." in path.name or ".http." in path.name


def _cryptofeed_rows(ws: Path) -> list[tuple[int, bytes, str]]:
    rows = []
    lines = _open_bytes(ws).splitlines()
    for n, line in enumerate(lines[1:], start=2):  # the first line is the subscribed URL
        if not line.strip():
            continue
        ts, _, frame = line.partition(b": ")
        rows.append((_seconds_to_ns(ts, ws, n), frame, ""))
    prefix = ws.name.split(".ws.")[0]
    for http in sorted(ws.parent.glob(f"{prefix}.http.*")):
        for n, line in enumerate(_open_bytes(http).splitlines(), start=1):
            head, sep, body = line.partition(b": ")
            if not sep:
                continue
            url, _, ts = head.partition(b" -> ")
            try:
                query = parse_qs(urlparse(url.decode()).query)
            except UnicodeDecodeError:
                raise _not_a_capture(http, n, "the URL is not text") from None
            symbol = query.get("symbol", [""])[0].upper()
            rows.append((_seconds_to_ns(ts, http, n), body, symbol))
    rows.sort(key=lambda r: r[0])  # stable: a frame and a body with one time keep order
    return rows


def _seconds_to_ns(text: bytes, path: Path, lineno: int) -> int:
    whole, _, frac = text.strip().partition(b".")
    if not whole.isdigit() or not (frac.isdigit() or not frac):
        raise _not_a_capture(path, lineno, f"no receive time in seconds: {text[:20]!r}")
    return int(whole) * 1_000_000_000 + int((frac.decode() + "000000000")[:9])


def _line_rows(path: Path) -> list[tuple[int, bytes, str, bool]]:
    from pipeline.marketdata.sbe import symbol_of  # numba: only when a file has SBE rows

    rows = []
    symbols = set()
    for n, line in enumerate(_open_bytes(path).splitlines(), start=1):
        if not line.strip():
            continue
        ts, _, raw = line.partition(b" ")
        if not ts.isdigit() or not raw:
            raise _not_a_capture(path, n, f"it starts {line[:24]!r}")
        binary = raw.startswith(BINARY_TAG)
        if binary:
            try:
                raw = base64.b64decode(raw[len(BINARY_TAG):], validate=True)
            except binascii.Error:
                raise _not_a_capture(path, n, "a b64: frame that is not base64") from None
            sym = symbol_of(raw).upper()
            if sym:
                symbols.add(sym)
        elif m := _SYMBOL_IN_DEPTH.search(raw):
            symbols.add(m.group(1).decode().upper())
        rows.append((int(ts), raw, "", binary))
    owner = next(iter(symbols)) if len(symbols) == 1 else ""
    return [(t, raw, owner if not b and b'"lastUpdateId"' in raw else "", b)
            for t, raw, _, b in rows]


def load(paths: list[str | Path]) -> Capture:
    """Read capture files (in the given order; they continue one stream)."""
    rows: list[tuple[int, bytes, str, bool]] = []
    for p in map(Path, paths):
        if _is_cryptofeed(p):
            if ".http." in p.name:
                continue  # read together with its .ws. sibling
            mine = [(*r, False) for r in _cryptofeed_rows(p)]
        else:
            mine = _line_rows(p)
        if not mine:
            raise CaptureError(f"{p}: no messages in this capture (empty file?); record "
                               "one with 'hft capture' or drop it from the command")
        rows.extend(mine)
    lengths = np.array([len(r[1]) for r in rows], np.int64)
    end = np.cumsum(lengths)
    start = end - lengths
    data = np.frombuffer(b"".join(r[1] for r in rows), np.uint8)
    return Capture(data, start, end, np.array([r[0] for r in rows], np.int64),
                   [r[2] for r in rows], np.array([r[3] for r in rows], np.bool_))

