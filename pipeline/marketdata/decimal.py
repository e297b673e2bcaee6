"""Integer helpers for the jitted market-data code.

The exact decimal -> ticks/lots conversion and the ASCII integer scan live in
``pipeline.units`` (one definition, shared with the FIX codec and the Python side).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, _nrt=False)
def gcd(a, b):
    while b:
        a, b = b, a % b
    return a
