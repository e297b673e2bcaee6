"""Exact decimal arithmetic for the jitted parser.

A JSON decimal string is read as ``(mantissa, decimals)`` with trailing fractional zeros
dropped ("6195.00000000" -> (6195, 0), "0.35130000" -> (3513, 4)), so a value's precision
is what it carries, not how it is padded. ``to_units`` then converts exactly to ticks or
lots of an instrument grid (``price = ticks * tick_units * 10**-price_decimals``) or
reports that the value is off the grid: never rounded.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INT64_MAX = np.iinfo(np.int64).max
MAX_DIGITS = 18  # significant digits that always fit an int64
POW10 = np.array([10**i for i in range(19)], dtype=np.int64)
MUL_LIMIT = np.array([(2**63 - 1) // 10**i for i in range(19)], dtype=np.int64)


@njit(cache=True, _nrt=False, inline="always")
def to_units(mant, dec, grid_decimals, grid_units):
    """``mant * 10**-dec`` as a whole number of ``grid_units * 10**-grid_decimals``;
    returns -1 when it is not one (off grid, or too large to represent). No division on
    the common path (a power-of-ten tick: ``grid_units == 1``)."""
    shift = grid_decimals - dec
    if shift < 0 or shift > MAX_DIGITS:
        return -1  # trailing zeros are already dropped: extra decimals are never zero
    if mant > MUL_LIMIT[shift]:
        return -1
    scaled = mant * POW10[shift]
    if grid_units == 1:
        return scaled
    if scaled % grid_units != 0:
        return -1
    return scaled // grid_units


@njit(cache=True, _nrt=False)
def gcd(a, b):
    while b:
        a, b = b, a % b
    return a
