"""Instruments: the symbol table and exact decimal <-> ticks/lots conversion.

After parsing, a price is an int64 number of ticks and a quantity an int64 number of lots
of its instrument. A decimal string converts exactly or is rejected: "61837.63000000" at
tick 0.01 is 6183763 ticks; "61837.635" at tick 0.01 is not on the grid and raises.
The jitted parser does the same arithmetic on bytes using ``instrument_table``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np

from pipeline import units as U

VENUE_KINDS = ("spot", "usdm", "coinm")

# one row per instrument, indexed by symbol_id, for jitted code
INSTRUMENT_ROW = np.dtype([
    ("price_decimals", "<i8"),  # price = mantissa * 10**-price_decimals
    ("tick_units", "<i8"),  # tick size in units of 10**-price_decimals
    ("qty_decimals", "<i8"),
    ("lot_units", "<i8"),
    ("venue_kind", "<i8"),  # index into VENUE_KINDS
])


class OffGrid(ValueError):
    """A decimal that is not a whole number of ticks/lots (never rounded)."""


def _grid(step: str) -> tuple[int, int]:
    """("0.01") -> (decimals=2, units=1); ("0.5") -> (1, 5); ("10") -> (0, 10)."""
    try:
        d = Decimal(step)
    except InvalidOperation:
        raise ValueError(f"not a decimal step: {step!r}") from None
    if d <= 0:
        raise ValueError(f"step must be positive: {step!r}")
    d = d.normalize()
    exp = -d.as_tuple().exponent
    decimals = max(exp, 0)
    units = int(d.scaleb(decimals))
    return decimals, units


def to_units(text: str, decimals: int, units: int, what: str = "value") -> int:
    """Exact conversion of a decimal string to a whole number of ``units * 10**-decimals``
    (the jitted ``pipeline.units.parse_units`` on its plain form: one rule for both)."""
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise OffGrid(f"{what} {text!r} is not a decimal number") from None
    plain = np.frombuffer(format(d, "f").encode(), np.uint8)  # "1E-8" -> "0.00000001"
    v, err = U.parse_units(plain, 0, len(plain), units, decimals)
    if err == U.U_BAD_NUMBER:
        raise OffGrid(f"{what} {text!r} is not a decimal number")
    if err == U.U_OFF_GRID:
        raise OffGrid(f"{what} {text!r} " + {
            U.TOO_FINE: f"has more than {decimals} decimals",
            U.OFF_STEP: "is not a multiple of the step"}.get(int(v), "is too large"))
    return int(v)


def from_units(n: int, decimals: int, units: int) -> str:
    """Plain decimal string without trailing zeros: 6183763 ticks of 0.01 -> "61837.63"."""
    d = Decimal(n * units).scaleb(-decimals)
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class Instrument:
    symbol: str
    venue: str
    tick_size: str
    lot_size: str
    symbol_id: int = 0
    price_decimals: int = field(init=False)
    tick_units: int = field(init=False)
    qty_decimals: int = field(init=False)
    lot_units: int = field(init=False)

    def __post_init__(self):
        if self.venue not in VENUE_KINDS:
            raise ValueError(f"{self.symbol}: venue {self.venue!r} not one of {VENUE_KINDS}")
        object.__setattr__(self, "symbol", self.symbol.upper())
        pd, tu = _grid(self.tick_size)
        qd, lu = _grid(self.lot_size)
        object.__setattr__(self, "price_decimals", pd)
        object.__setattr__(self, "tick_units", tu)
        object.__setattr__(self, "qty_decimals", qd)
        object.__setattr__(self, "lot_units", lu)

    def ticks(self, price: str) -> int:
        return to_units(price, self.price_decimals, self.tick_units, f"{self.symbol} price")

    def lots(self, qty: str) -> int:
        return to_units(qty, self.qty_decimals, self.lot_units, f"{self.symbol} qty")

    def price_str(self, ticks: int) -> str:
        return from_units(ticks, self.price_decimals, self.tick_units)

    def qty_str(self, lots: int) -> str:
        return from_units(lots, self.qty_decimals, self.lot_units)


class SymbolTable:
    """Instruments by id (their index) and by symbol."""

    def __init__(self, instruments: list[Instrument]):
        self.instruments = [Instrument(i.symbol, i.venue, i.tick_size, i.lot_size, n)
                            for n, i in enumerate(instruments)]
        self._by_symbol = {i.symbol: i for i in self.instruments}
        if len(self._by_symbol) != len(self.instruments):
            raise ValueError("duplicate symbol in instrument table")

    @classmethod
    def from_config(cls, rows: list[dict]) -> SymbolTable:
        return cls([Instrument(r["symbol"], r.get("venue", "spot"), str(r["tick_size"]),
                               str(r["lot_size"])) for r in rows])

    def __len__(self) -> int:
        return len(self.instruments)

    def __iter__(self):
        return iter(self.instruments)

    def __getitem__(self, key: int | str) -> Instrument:
        return self.instruments[key] if isinstance(key, int) else self._by_symbol[key.upper()]

    def __contains__(self, symbol: str) -> bool:
        return symbol.upper() in self._by_symbol

    def table(self) -> np.ndarray:
        """The per-instrument grid as a structured array for jitted code."""
        rows = np.zeros(len(self.instruments), INSTRUMENT_ROW)
        for i in self.instruments:
            rows[i.symbol_id] = (i.price_decimals, i.tick_units, i.qty_decimals, i.lot_units,
                                 VENUE_KINDS.index(i.venue))
        return rows


def symbol_matrix(symbols: list[str], width: int = 16) -> np.ndarray:
    """Zero-padded uint8 rows, indexed by symbol id, for ``parse``/``symbol_id``."""
    out = np.zeros((max(len(symbols), 1), width), np.uint8)
    for i, s in enumerate(symbols):
        raw = s.encode()
        if len(raw) > width:
            raise ValueError(f"symbol {s!r} longer than {width} bytes")
        out[i, : len(raw)] = np.frombuffer(raw, np.uint8)
    return out
