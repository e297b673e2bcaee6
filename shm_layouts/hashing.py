"""Layout hash: a stable 63-bit digest of dtypes plus the layout version."""

from __future__ import annotations

import hashlib

import numpy as np


def layout_hash(*parts: np.dtype | str | int) -> int:
    """Hash dtypes (field names, types, offsets, itemsize) and tags into a positive int64.

    Two processes agree on a segment only if they agree on this number.
    """
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        if isinstance(part, np.dtype):
            fields = [(n, str(part.fields[n][0]), part.fields[n][1]) for n in part.names or ()]
            h.update(repr((fields, part.itemsize)).encode())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return int.from_bytes(h.digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF
