"""Exact decimal -> ticks/lots, and ASCII integers: the one definition both codecs share.

A decimal is read as ``(mantissa, decimals)`` with trailing fractional zeros dropped
("6195.00000000" -> (6195, 0), "0.35130000" -> (3513, 4)), so a value's precision is what
it carries, not how it is padded. ``to_units`` converts that exactly to a whole number of
an instrument grid's ticks or lots (``price = ticks * tick_units * 10**-price_decimals``) or
says why it cannot: never rounded. The market-data JSON parser (``marketdata.parser``)
produces the mantissa itself (its fast path divides trailing zeros out without a division);
the FIX codec and the Python side (``instruments.to_units``) read text with ``parse_units``.
Bottom layer: imports nothing of the pipeline, so ``fix/`` and ``marketdata/`` both use it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INT64_MAX = np.iinfo(np.int64).max
MAX_DIGITS = 18  # significant digits that always fit an int64
POW10 = np.array([10**i for i in range(19)], dtype=np.int64)
MUL_LIMIT = np.array([(2**63 - 1) // 10**i for i in range(19)], dtype=np.int64)

# ``to_units`` failures (negative, so a caller may test ``< 0``) and ``parse_units`` errors
TOO_FINE, OFF_STEP, TOO_LARGE = -1, -2, -3  # more decimals than the grid / not a step / > int64
U_OK, U_BAD_NUMBER, U_OFF_GRID = 0, 1, 2
MINUS, DOT, ZERO, NINE = 45, 46, 48, 57  # ASCII


@njit(cache=True, _nrt=False, inline="always")
def to_units(mant, dec, grid_decimals, grid_units):
    """``mant * 10**-dec`` (``mant`` >= 0) as a whole number of
    ``grid_units * 10**-grid_decimals``; negative (TOO_FINE, OFF_STEP, TOO_LARGE) when it is
    not one. No division on the common path (a power-of-ten tick: ``grid_units == 1``)."""
    shift = grid_decimals - dec
    if shift < 0:
        return TOO_FINE  # trailing zeros are already dropped: extra decimals are never zero
    if shift > MAX_DIGITS or mant > MUL_LIMIT[shift]:
        return TOO_LARGE
    scaled = mant * POW10[shift]
    if grid_units == 1:
        return scaled
    if scaled % grid_units != 0:
        return OFF_STEP
    return scaled // grid_units


@njit(cache=True, _nrt=False, inline="always")
def scan_int(b, i, end):
    """Optional '-' then ASCII digits from ``b[i]``, up to a non-digit or ``end``:
    ``(value, position after, digits)``; digits -1 when the value is beyond int64."""
    neg = i < end and b[i] == MINUS
    if neg:
        i += 1
    start = i
    v = 0
    while i < end:
        d = np.int64(b[i]) - ZERO
        if d < 0 or d > 9:
            break
        if v > (INT64_MAX - d) // 10:
            return 0, i, -1
        v = v * 10 + d
        i += 1
    return (-v if neg else v), i, i - start


@njit(cache=True, _nrt=False)
def parse_units(b, at, n, units, decimals):
    """Decimal text ``b[at:at + n]`` (optional '-', digits, optional '.' and digits) ->
    ``(whole number of units * 10**-decimals, U_OK)``, or ``(0, U_BAD_NUMBER)`` /
    ``(0, U_OFF_GRID)`` / ``(the to_units failure, U_OFF_GRID)``."""
    if n <= 0:
        return 0, U_BAD_NUMBER
    i = at
    end = at + n
    neg = b[i] == MINUS
    if neg:
        i += 1
    mant = 0
    sig = 0  # significant digits in mant
    dec = -1  # digits after the point, -1 before seeing one
    digits = 0
    tz = 0  # trailing fractional zeros, not yet in mant
    while i < end:
        c = b[i]
        if c == DOT and dec < 0:
            dec = 0
        elif ZERO <= c <= NINE:
            digits += 1
            if dec >= 0:
                dec += 1
            if c == ZERO and dec >= 0:
                tz += 1  # significant only if a non-zero digit follows
            else:  # a non-zero digit, or a zero of the integer part
                for _ in range(tz):  # the pending fractional zeros: a digit follows them
                    if sig:
                        if sig == MAX_DIGITS:
                            return 0, U_BAD_NUMBER
                        sig += 1
                        mant *= 10
                if sig or c != ZERO:
                    if sig == MAX_DIGITS:
                        return 0, U_BAD_NUMBER
                    sig += 1
                mant = mant * 10 + (c - ZERO)
                tz = 0
        else:
            return 0, U_BAD_NUMBER
        i += 1
    if digits == 0:
        return 0, U_BAD_NUMBER
    dec = max(dec - tz, 0)
    v = to_units(mant, dec, decimals, units)
    if v < 0:
        return v, U_OFF_GRID
    return (-v if neg else v), U_OK
