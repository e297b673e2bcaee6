"""WebSocket frame decoding (RFC 6455, server -> client) in numba.

``next_frame(buf, r, w)`` looks at ``buf[r:w]`` and returns
``(status, opcode, fin, payload_start, payload_end, next_r)``: status 1 for a complete
frame, 0 when more bytes are needed, -1 for a protocol error (a masked server frame, a
reserved bit, a control frame longer than 125 bytes or fragmented, or a payload longer
than the buffer can ever hold).
"""

from __future__ import annotations

import numpy as np
from numba import njit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


@njit(cache=True, _nrt=False)
def next_frame(buf, r, w):
    if w - r < 2:
        return 0, 0, 0, 0, 0, r
    b0 = np.int64(buf[r])
    b1 = np.int64(buf[r + 1])
    fin = (b0 >> 7) & 1
    opcode = b0 & 0x0F
    if b0 & 0x70 or b1 & 0x80:  # RSV bits (no extension negotiated) or a masked frame
        return -1, opcode, fin, 0, 0, r
    n = b1 & 0x7F
    p = np.int64(r) + 2
    if n == 126:
        if w - p < 2:
            return 0, 0, 0, 0, 0, r
        n = (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
        p += 2
    elif n == 127:
        if w - p < 8:
            return 0, 0, 0, 0, 0, r
        n = 0
        for k in range(8):
            n = (n << 8) | np.int64(buf[p + k])
        p += 8
    if opcode >= 8 and (n > 125 or not fin):
        return -1, opcode, fin, 0, 0, r
    if n < 0 or n > buf.shape[0] // 2:
        return -1, opcode, fin, 0, 0, r
    if w - p < n:
        return 0, 0, 0, 0, 0, r
    return 1, opcode, fin, p, p + n, p + n


def _head(opcode: int, n: int, mask_bit: int) -> bytes:
    """A final frame's header for an ``n``-byte payload (``mask_bit`` 0x80: masked)."""
    if n < 126:
        return bytes([0x80 | opcode, mask_bit | n])
    if n < 65536:
        return bytes([0x80 | opcode, mask_bit | 126]) + n.to_bytes(2, "big")
    return bytes([0x80 | opcode, mask_bit | 127]) + n.to_bytes(8, "big")


def encode_server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final server frame (cold path: benchmarks' streams)."""
    return _head(opcode, len(payload), 0) + payload


def encode_client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """A masked client frame (cold path: pong, close, test servers)."""
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return _head(opcode, len(payload), 0x80) + mask + masked
