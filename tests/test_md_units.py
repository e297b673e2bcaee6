"""``pipeline.units``: the one decimal -> ticks/lots rule and integer scan, and the three
callers that share it (the market-data parser, the FIX codec, ``instruments.to_units``)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import units as U
from pipeline.fix import codec as C
from pipeline.instruments import OffGrid, to_units
from pipeline.marketdata import parser as P


def _b(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8)


@pytest.mark.parametrize("text,decimals,units,want", [
    ("61837.63000000", 2, 1, 6183763),
    ("-0.50", 1, 5, -1),
    ("0.000000000000000000001000", 21, 1, 1),  # leading zeros are not significant
    ("000000000000000000000012.5", 1, 5, 25),
    ("7", 0, 1, 7),
    ("7.", 0, 1, 7),
])
def test_parse_units_converts_exactly(text, decimals, units, want):
    b = _b(text)
    assert U.parse_units(b, 0, len(b), units, decimals) == (want, U.U_OK)


@pytest.mark.parametrize("text,decimals,units,err,why", [
    ("61837.635", 2, 1, U.U_OFF_GRID, U.TOO_FINE),
    ("0.3", 1, 5, U.U_OFF_GRID, U.OFF_STEP),
    ("100000000000000000", 2, 1, U.U_OFF_GRID, U.TOO_LARGE),  # fits, its ticks do not
    ("1234567890123456789", 0, 1, U.U_BAD_NUMBER, 0),  # 19 significant digits
    ("", 2, 1, U.U_BAD_NUMBER, 0),
    ("-", 2, 1, U.U_BAD_NUMBER, 0),
    (".", 2, 1, U.U_BAD_NUMBER, 0),
    ("1.2.3", 2, 1, U.U_BAD_NUMBER, 0),
    ("1e3", 2, 1, U.U_BAD_NUMBER, 0),
])
def test_parse_units_refuses_what_the_grid_cannot_hold(text, decimals, units, err, why):
    b = _b(text)
    assert U.parse_units(b, 0, len(b), units, decimals) == (why, err)


@settings(max_examples=300, deadline=None)
@given(st.integers(-10**9, 10**9), st.integers(0, 12), st.integers(0, 8),
       st.sampled_from([1, 2, 5, 25]), st.integers(0, 3))
def test_instruments_fix_and_decimal_agree(mant, exp, decimals, units, pad):
    """One rule: ``instruments.to_units`` (Python text), the FIX codec's ``parse_units``
    and exact Decimal arithmetic give the same value or all refuse it."""
    d = Decimal(mant).scaleb(-exp)
    text = format(d, "f") + ("0" * pad if "." in format(d, "f") else "")
    scaled = d.scaleb(decimals)
    exact = int(scaled) // units if scaled == int(scaled) and int(scaled) % units == 0 \
        else None
    try:
        ours = to_units(text, decimals, units)
    except OffGrid:
        ours = None
    assert ours == exact
    b = _b(text)
    v, e = C.parse_units(b, 0, len(b), units, decimals)
    if text.startswith("-"):  # a FIX price or quantity is never negative (issue 18)
        assert e == C.E_OUT_OF_RANGE
        return
    assert (v if e == C.E_NONE else None) == exact
    assert e in (C.E_NONE, C.E_OFF_GRID)


def test_instruments_to_units_says_why():
    with pytest.raises(OffGrid, match="more than 2 decimals"):
        to_units("1.001", 2, 1, "price")
    with pytest.raises(OffGrid, match="not a multiple of the step"):
        to_units("0.3", 1, 5)
    with pytest.raises(OffGrid, match="not a decimal number"):
        to_units("abc", 2, 1)
    assert to_units("1E-8", 8, 1) == 1  # Decimal's notations, read as plain text


@pytest.mark.parametrize("text,fix,json", [
    ("0", 0, 0), ("-17", -17, -17), ("007", 7, 7),
    ("9223372036854775807", 2**63 - 1, 2**63 - 1),
    ("-9223372036854775807", 1 - 2**63, 1 - 2**63),
    ("9223372036854775808", None, None),  # beyond int64
    ("12a", None, 12),  # JSON: the value ends at the first non-digit (syntax checks the rest)
    ("1.5", None, None),  # JSON: a fraction where an integer belongs
    ("-", None, None), ("", None, None),
])
def test_fix_and_json_integers_share_the_scan(text, fix, json):
    """Both codecs read integers with ``units.scan_int``: a FIX field is digits only."""
    b = _b(text)
    assert C.parse_int(b, 0, len(b)) == ((fix, True) if fix is not None else (0, False))
    j = _b(text + ",")
    v, pos = P.parse_int(j, 0, len(j))
    if json is None:
        assert pos < 0
    else:
        assert (v, pos) == (json, len(text.rstrip("a")))
