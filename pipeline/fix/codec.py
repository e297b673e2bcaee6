"""FIX 4.4 application-message codec in numba: no Python object per message.

Encoding writes one message into a preallocated uint8 buffer. The body is written first at
``BODY_AT``; the ``8=FIX.4.4|9=<len>|`` prefix is then written right-aligned in front of it,
so a message occupies ``buf[start:end]`` (both returned) without moving any bytes.
Prices and quantities go out exactly from int64 ticks/lots and the instrument grid
(``pipeline.instruments.INSTRUMENT_ROW``); SendingTime/TransactTime carry microseconds.

Decoding works on a byte stream: ``frame`` finds one complete message (framing by
BodyLength, checksum verified) or says it needs more bytes or that the bytes are garbage;
``parse`` fills an int64 field vector (indices ``F_*``) for ExecutionReport (35=8),
OrderCancelReject (35=9) and the session fields of any message. Prices are converted
exactly back to ticks/lots once the symbol is known (tag order is free in FIX).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline import units as U
from shm_layouts.records import OrderType, Side, TimeInForce

SOH = 1
BEGIN = np.frombuffer(b"8=FIX.4.4\x019=", np.uint8).copy()
BODY_AT = 24  # body starts here; the 8=/9= prefix (<= 18 bytes) goes right before it
TRAILER = 7  # "10=NNN\x01"
MAX_BODY = 8192  # longer BodyLength values are garbage, not a reason to wait

# frame() results besides a positive message length
NEED_MORE = 0
GARBLED = -1

# field vector produced by parse(); one int64 per entry
(F_MSG_TYPE, F_SEQ, F_POSS_DUP, F_SENDING_TIME, F_CL_ORD_ID, F_ORIG_CL_ORD_ID, F_ORDER_ID,
 F_EXEC_ID, F_EXEC_TYPE, F_ORD_STATUS, F_SIDE, F_PRICE, F_LAST_PX, F_LAST_QTY, F_CUM_QTY,
 F_LEAVES_QTY, F_ORDER_QTY, F_TRANSACT_TIME, F_ORD_REJ_REASON, F_CXL_REJ_REASON,
 F_CXL_REJ_RESPONSE_TO, F_SYMBOL_ID, F_ERROR, F_TEXT_AT, F_TEXT_LEN, F_MASK, F_ERROR_TAG,
 F_SENDER_AT, F_SENDER_LEN, F_TARGET_AT, F_TARGET_LEN,
 F_ERROR_CODE, F_MASS_RESPONSE) = range(33)
# F_ERROR_CODE: Binance's ErrorCode (25016, negative); F_MASS_RESPONSE: MassCancelResponse
# (531) char of an OrderMassCancelReport
N_FIELDS = 33
# F_MASK bits: which optional fields were present
M_PRICE, M_LAST_PX, M_LAST_QTY, M_CUM_QTY, M_LEAVES_QTY, M_ORDER_QTY = 1, 2, 4, 8, 16, 32
# F_ERROR values: the message framed and checksummed fine but a field is unusable (the
# first one found; F_ERROR_TAG names its tag, 0 when the tag number itself is the problem)
E_NONE, E_BAD_NUMBER, E_OFF_GRID, E_UNKNOWN_SYMBOL, E_BAD_TIME = 0, 1, 2, 3, 4
E_BAD_TAG = 5  # tag number not digits, a leading zero, too long, or a field without '='
E_REPEATED_TAG = 6  # a tag this codec reads appears twice (which one counts is ambiguous)
E_EMPTY_VALUE = 7  # tag=<nothing>
E_BAD_CHAR = 8  # a NUL byte inside a value ("55=DOGE\0" must not match DOGE)
E_MISSING_FIELD = 9  # a fill without LastPx/LastQty/CumQty, a report without 150/39
E_OUT_OF_RANGE = 10  # negative price/quantity, zero LastPx/LastQty on a fill, > int64
E_COMP_ID = 11  # SenderCompID/TargetCompID not this session's (set by the session layer)
MAX_TAG_DIGITS = 9

MSG_NEW_ORDER = ord("D")
MSG_CANCEL = ord("F")
MSG_REPLACE = ord("G")
MSG_STATUS = ord("H")
MSG_EXEC_REPORT = ord("8")
MSG_CANCEL_REJECT = ord("9")


def msg_code(msg_type: str) -> int:
    """F_MSG_TYPE's value for ``msg_type`` (up to three chars, little-endian packed)."""
    return sum(ord(c) << (8 * i) for i, c in enumerate(msg_type))


# Binance Spot's own application messages (fix/spot-fix-oe.xml)
MSG_AMEND_REJECT = msg_code("XAR")
MSG_MASS_CANCEL_REPORT = msg_code("r")
MSG_LIMIT_RESPONSE = msg_code("XLR")


SPAN_WORDS = 12  # parse()'s scratch: offset and length of each price/qty value
# the tags parse() reads, each with a bit of its own: a second occurrence is E_REPEATED_TAG
READ_TAGS = (8, 9, 35, 34, 43, 49, 56, 52, 60, 11, 41, 37, 17, 150, 39, 54, 55, 103, 102, 58,
             44, 31, 32, 14, 151, 38)
TAG_BIT = np.full(200, -1, np.int64)
for _i, _t in enumerate(READ_TAGS):
    TAG_BIT[_t] = _i
BIT_434 = len(READ_TAGS)  # CxlRejResponseTo, beyond the table
BIT_531, BIT_25016 = BIT_434 + 1, BIT_434 + 2  # Binance's MassCancelResponse, ErrorCode
FIX_TRADE, FIX_PARTIAL, FIX_FILLED = ord("F"), ord("1"), ord("2")  # ExecType chars of a fill
NUM_TAGS = np.array([44, 31, 32, 14, 151, 38], np.int64)  # F_PRICE.. F_ORDER_QTY, in order

BID = int(Side.BID)
MARKET = int(OrderType.MARKET)
IOC, FOK, POST_ONLY = int(TimeInForce.IOC), int(TimeInForce.FOK), int(TimeInForce.POST_ONLY)


class Symbols(NamedTuple):
    """The instruments as the codec sees them: ``names`` (uint8 [n, 16], zero padded, see
    ``instruments.symbol_matrix``), ``lens`` (bytes of each name) and ``grid``
    (INSTRUMENT_ROW per id)."""

    names: np.ndarray
    lens: np.ndarray
    grid: np.ndarray


def symbols(names: np.ndarray, grid: np.ndarray) -> Symbols:
    """``Symbols`` of a ``symbol_matrix`` and its grid (lengths counted from the padding)."""
    return Symbols(names, (names != 0).sum(axis=1).astype(np.int64), grid)


# ExecutionReport fields for ``encode_exec_report`` (the acceptor side): one record, not
# a dozen positional scalars; exec_type/ord_status are FIX chars (e.g. ord("0"), ord("F"))
EXEC_FIELDS = np.dtype([("order_id", "<i8"), ("cl_ord_id", "<i8"), ("exec_id", "<i8"),
                        ("price", "<i8"), ("qty", "<i8"), ("last_px", "<i8"),
                        ("last_qty", "<i8"), ("cum_qty", "<i8"), ("leaves_qty", "<i8"),
                        ("exec_type", "u1"), ("ord_status", "u1"), ("side", "u1")])


# ------------------------------------------------------------------------------ writing
@njit(cache=True, inline="always")
def put_bytes(buf, pos, src):
    for i in range(src.shape[0]):
        buf[pos + i] = src[i]
    return pos + src.shape[0]


@njit(cache=True, _nrt=False)
def put_uint(buf, pos, value):
    """Decimal digits of ``value`` >= 0; returns the new position."""
    n = 1
    v = value
    while v >= 10:
        v //= 10
        n += 1
    v = value
    for i in range(n - 1, -1, -1):
        buf[pos + i] = 48 + v % 10
        v //= 10
    return pos + n


@njit(cache=True, _nrt=False)
def put_tag(buf, pos, tag):
    pos = put_uint(buf, pos, tag)
    buf[pos] = 61  # '='
    return pos + 1


@njit(cache=True, _nrt=False)
def put_int_field(buf, pos, tag, value):
    pos = put_tag(buf, pos, tag)
    if value < 0:
        buf[pos] = 45
        pos += 1
        value = -value
    pos = put_uint(buf, pos, value)
    buf[pos] = SOH
    return pos + 1


@njit(cache=True, _nrt=False)
def put_char_field(buf, pos, tag, ch):
    pos = put_tag(buf, pos, tag)
    buf[pos] = ch
    buf[pos + 1] = SOH
    return pos + 2


@njit(cache=True, _nrt=False)
def put_decimal_field(buf, pos, tag, n, units, decimals):
    """``n * units * 10**-decimals`` exactly, without trailing fractional zeros."""
    pos = put_tag(buf, pos, tag)
    m = n * units
    if m < 0:
        buf[pos] = 45
        pos += 1
        m = -m
    scale = 1
    for _ in range(decimals):
        scale *= 10
    pos = put_uint(buf, pos, m // scale)
    frac = m % scale
    if frac:
        digits = decimals
        while frac % 10 == 0:
            frac //= 10
            digits -= 1
        buf[pos] = 46  # '.'
        pos += 1
        v = frac
        for i in range(digits - 1, -1, -1):
            buf[pos + i] = 48 + v % 10
            v //= 10
        pos += digits
    buf[pos] = SOH
    return pos + 1


@njit(cache=True, _nrt=False)
def civil_from_days(z):
    """(year, month, day) of day ``z`` since 1970-01-01 (H. Hinnant's algorithm)."""
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (1 if m <= 2 else 0), m, d


@njit(cache=True, _nrt=False)
def put_fixed(buf, pos, value, width):
    for i in range(width - 1, -1, -1):
        buf[pos + i] = 48 + value % 10
        value //= 10
    return pos + width


@njit(cache=True, _nrt=False)
def put_time_field(buf, pos, tag, epoch_ns):
    """UTCTimestamp YYYYMMDD-HH:MM:SS.ffffff."""
    pos = put_tag(buf, pos, tag)
    us = epoch_ns // 1000
    secs = us // 1_000_000
    days = secs // 86400
    sod = secs - days * 86400
    y, m, d = civil_from_days(days)
    pos = put_fixed(buf, pos, y, 4)
    pos = put_fixed(buf, pos, m, 2)
    pos = put_fixed(buf, pos, d, 2)
    buf[pos] = 45
    pos = put_fixed(buf, pos + 1, sod // 3600, 2)
    buf[pos] = 58
    pos = put_fixed(buf, pos + 1, sod // 60 % 60, 2)
    buf[pos] = 58
    pos = put_fixed(buf, pos + 1, sod % 60, 2)
    buf[pos] = 46
    pos = put_fixed(buf, pos + 1, us % 1_000_000, 6)
    buf[pos] = SOH
    return pos + 1


@njit(cache=True, _nrt=False)
def begin_body(buf, msg_type, comp_ids, seq, sending_ns):
    """MsgType, the prebuilt ``49=..|56=..|`` block, MsgSeqNum and SendingTime."""
    pos = BODY_AT
    buf[pos] = 51  # '3'
    buf[pos + 1] = 53  # '5'
    buf[pos + 2] = 61
    buf[pos + 3] = msg_type
    buf[pos + 4] = SOH
    pos = put_bytes(buf, pos + 5, comp_ids)
    pos = put_int_field(buf, pos, 34, seq)
    return put_time_field(buf, pos, 52, sending_ns)


@njit(cache=True, _nrt=False)
def finish(buf, body_end):
    """Write the 8=/9= prefix in front of the body and the checksum after it.

    Returns ``(start, end)`` of the complete message in ``buf``."""
    body_len = body_end - BODY_AT
    digits = 1
    v = body_len
    while v >= 10:
        v //= 10
        digits += 1
    start = BODY_AT - (BEGIN.shape[0] + digits + 1)
    pos = put_bytes(buf, start, BEGIN)
    pos = put_uint(buf, pos, body_len)
    buf[pos] = SOH
    total = 0
    for i in range(start, body_end):
        total += buf[i]
    pos = body_end
    buf[pos] = 49
    buf[pos + 1] = 48
    buf[pos + 2] = 61
    pos = put_fixed(buf, pos + 3, total % 256, 3)
    buf[pos] = SOH
    return start, pos + 1


@njit(cache=True, _nrt=False)
def fix_side(side):
    return 49 if side == BID else 50  # Side BID/BUY -> '1', ASK/SELL -> '2'


@njit(cache=True, _nrt=False)
def put_qty(buf, pos, tag, lots, grid):
    return put_decimal_field(buf, pos, tag, lots, grid["lot_units"], grid["qty_decimals"])


@njit(cache=True, _nrt=False)
def put_price(buf, pos, tag, ticks, grid):
    return put_decimal_field(buf, pos, tag, ticks, grid["tick_units"], grid["price_decimals"])


@njit(cache=True, _nrt=False)
def put_symbol_side(buf, pos, symbol, side):
    """Symbol (55) and Side (54)."""
    pos = put_tag(buf, pos, 55)
    pos = put_bytes(buf, pos, symbol)
    buf[pos] = SOH
    return put_char_field(buf, pos + 1, 54, fix_side(side))


@njit(cache=True, _nrt=False)
def put_order_fields(buf, pos, symbol, o, grid):
    """Symbol, Side, OrderQty, OrdType, Price, TimeInForce (+ExecInst for post-only) of
    order ``o`` (a record with side, price, qty, ord_type, tif: ORDER_INTENT or ORDER)."""
    pos = put_symbol_side(buf, pos, symbol, o["side"])
    pos = put_qty(buf, pos, 38, o["qty"], grid)
    market = o["ord_type"] == MARKET
    pos = put_char_field(buf, pos, 40, 49 if market else 50)  # '1' market, '2' limit
    if not market:
        pos = put_price(buf, pos, 44, o["price"], grid)
    tif = o["tif"]
    if tif == IOC:
        pos = put_char_field(buf, pos, 59, 51)  # '3'
    elif tif == FOK:
        pos = put_char_field(buf, pos, 59, 52)  # '4'
    else:
        pos = put_char_field(buf, pos, 59, 49)  # GTC '1'
        if tif == POST_ONLY:
            pos = put_char_field(buf, pos, 18, 54)  # ExecInst '6' participate-don't-initiate
    return pos


@njit(cache=True, _nrt=False)
def encode_new_order(buf, comp_ids, seq, now_ns, o, symbol, grid):
    """NewOrderSingle (35=D) of order ``o`` (cl_ord_id and the ``put_order_fields``).
    ``grid`` is the instrument's INSTRUMENT_ROW record."""
    pos = begin_body(buf, MSG_NEW_ORDER, comp_ids, seq, now_ns)
    pos = put_int_field(buf, pos, 11, o["cl_ord_id"])
    pos = put_order_fields(buf, pos, symbol, o, grid)
    pos = put_time_field(buf, pos, 60, now_ns)
    return finish(buf, pos)


@njit(cache=True, _nrt=False)
def encode_cancel(buf, comp_ids, seq, now_ns, cl_ord_id, orig_cl_ord_id, symbol, side,
                  qty, grid):
    """OrderCancelRequest (35=F)."""
    pos = begin_body(buf, MSG_CANCEL, comp_ids, seq, now_ns)
    pos = put_int_field(buf, pos, 11, cl_ord_id)
    pos = put_int_field(buf, pos, 41, orig_cl_ord_id)
    pos = put_symbol_side(buf, pos, symbol, side)
    pos = put_qty(buf, pos, 38, qty, grid)
    pos = put_time_field(buf, pos, 60, now_ns)
    return finish(buf, pos)


@njit(cache=True, _nrt=False)
def encode_replace(buf, comp_ids, seq, now_ns, o, symbol, grid):
    """OrderCancelReplaceRequest (35=G): intent ``o`` (ORDER_INTENT: cl_ord_id,
    orig_cl_ord_id and the ``put_order_fields``)."""
    pos = begin_body(buf, MSG_REPLACE, comp_ids, seq, now_ns)
    pos = put_int_field(buf, pos, 11, o["cl_ord_id"])
    pos = put_int_field(buf, pos, 41, o["orig_cl_ord_id"])
    pos = put_order_fields(buf, pos, symbol, o, grid)
    pos = put_time_field(buf, pos, 60, now_ns)
    return finish(buf, pos)


@njit(cache=True, _nrt=False)
def encode_status_request(buf, comp_ids, seq, now_ns, cl_ord_id, symbol, side):
    """OrderStatusRequest (35=H), used to reconcile open orders after a (re)connect."""
    pos = begin_body(buf, MSG_STATUS, comp_ids, seq, now_ns)
    pos = put_int_field(buf, pos, 11, cl_ord_id)
    pos = put_symbol_side(buf, pos, symbol, side)
    return finish(buf, pos)


# ------------------------------------------------------------------------------ reading
@njit(cache=True, _nrt=False)
def at_begin(buf, pos, end):
    """``buf[pos:]`` starts with ``8=FIX`` (a message, or an attempt at one)."""
    return pos + 5 <= end and buf[pos] == 56 and buf[pos + 1] == 61 and \
        buf[pos + 2] == 70 and buf[pos + 3] == 73 and buf[pos + 4] == 88


@njit(cache=True, _nrt=False)
def resync(buf, start, end):
    """Position of the next ``8=FIX`` after ``start`` (or a safe tail to keep)."""
    pos = start + 1
    while pos + 5 <= end:
        if buf[pos] == 56 and buf[pos + 1] == 61 and buf[pos + 2] == 70 and \
                buf[pos + 3] == 73 and buf[pos + 4] == 88:
            return pos
        pos += 1
    return max(start + 1, end - 4)  # a partial "8=FIX" may be the start of the next frame


NEED_BODY = -2  # _frame(): the header is there, the claimed body not yet


@njit(cache=True, _nrt=False)
def _frame(buf, start, end):
    """``frame`` without the stall check: NEED_BODY while the claimed body is incomplete."""
    n = end - start
    head = BEGIN.shape[0]
    for i in range(min(n, head)):
        if buf[start + i] != BEGIN[i]:
            return GARBLED
    if n < head + 2:
        return NEED_MORE
    pos = start + head
    body_len = 0
    digits = 0
    while pos < end and buf[pos] != SOH:
        c = buf[pos]
        if c < 48 or c > 57 or digits >= 7:
            return GARBLED
        body_len = body_len * 10 + (c - 48)
        digits += 1
        pos += 1
    if pos >= end:
        return NEED_MORE
    if digits == 0:
        return GARBLED
    body_start = pos + 1
    total = body_start - start + body_len + TRAILER
    if body_len > MAX_BODY:
        return GARBLED
    if n < total:
        return NEED_BODY
    t = body_start + body_len
    if buf[t - 1] != SOH or buf[t] != 49 or buf[t + 1] != 48 or buf[t + 2] != 61 or \
            buf[t + 6] != SOH:
        return GARBLED  # BodyLength does not land on "|10="
    s = 0
    for i in range(start, t):
        s += buf[i]
    want = 0
    for i in range(t + 3, t + 6):
        c = buf[i]
        if c < 48 or c > 57:
            return GARBLED
        want = want * 10 + (c - 48)
    if s % 256 != want:
        return GARBLED
    return total


@njit(cache=True, _nrt=False)
def frame(buf, start, end):
    """Length of the complete, checksum-valid message at ``buf[start:end]``.

    NEED_MORE (0) if it is not all there yet; GARBLED (-1) if these bytes cannot be a valid
    message (wrong begin string, bad BodyLength, bad checksum): the caller drops them up
    to ``resync`` and counts it.
    """
    n = _frame(buf, start, end)
    if n != NEED_BODY:
        return n
    # a BodyLength too large would stall the stream: if a complete, checksum-valid message
    # has already begun inside the claimed body, this one is garbage. An "8=FIX" that is
    # only text (a Text(58) quoting a message, cut by the read) is no reason.
    pos = start
    while True:
        pos = resync(buf, pos, end)
        if pos + 5 > end:
            return NEED_MORE
        if _frame(buf, pos, end) > 0:
            return GARBLED


@njit(cache=True, _nrt=False)
def parse_int(buf, at, n):
    """Signed decimal integer, the whole field; returns (value, ok) (``pipeline.units``)."""
    if n <= 0 or n > 20:
        return 0, False
    v, end, digits = U.scan_int(buf, at, at + n)
    if digits <= 0 or end != at + n:
        return 0, False  # no digit, beyond int64, or not a digit
    return v, True


@njit(cache=True, _nrt=False)
def parse_units(buf, at, n, units, decimals):
    """Decimal string -> whole number of ``units * 10**-decimals``: (value, error)
    (``pipeline.units.parse_units``: off the grid is an error, never a rounding; a sign or
    a value beyond int64 is E_OUT_OF_RANGE)."""
    if n > 0 and buf[at] == 45:  # prices and quantities here are never negative ("-0" too)
        return 0, E_OUT_OF_RANGE
    v, e = U.parse_units(buf, at, n, units, decimals)
    if e == U.U_OK:
        return v, E_NONE
    if e == U.U_BAD_NUMBER:
        return 0, E_BAD_NUMBER
    return 0, (E_OUT_OF_RANGE if v == U.TOO_LARGE else E_OFF_GRID)


@njit(cache=True, _nrt=False)
def parse_id(buf, at, n):
    """An id tag as int64: its value if all digits (our ClOrdIDs), else a 63-bit FNV-1a hash
    (venue order/exec ids are free text at third-party venues)."""
    v, ok = parse_int(buf, at, n)
    if ok and buf[at] != 45:  # all digits: a sign makes it free text ("-0" is not 0)
        return v
    h = np.uint64(14695981039346656037)
    for i in range(n):
        h = (h ^ np.uint64(buf[at + i])) * np.uint64(1099511628211)
    return np.int64(h >> np.uint64(1)) | np.int64(1) << np.int64(62)


@njit(cache=True, _nrt=False)
def parse_digits(buf, at, n):
    """Exactly ``n`` ASCII digits (no sign): (value, ok)."""
    v = 0
    for i in range(n):
        c = buf[at + i]
        if c < 48 or c > 57:
            return 0, False
        v = v * 10 + (c - 48)
    return v, n > 0


@njit(cache=True, _nrt=False)
def parse_time(buf, at, n):
    """UTCTimestamp (seconds, millis, micros or nanos) -> epoch ns; -1 if malformed."""
    if n < 17 or buf[at + 8] != 45 or buf[at + 11] != 58 or buf[at + 14] != 58:
        return -1
    y, ok_y = parse_digits(buf, at, 4)  # digits only: "-1" is no hour
    m, ok_m = parse_digits(buf, at + 4, 2)
    d, ok_d = parse_digits(buf, at + 6, 2)
    hh, ok_h = parse_digits(buf, at + 9, 2)
    mm, ok_mm = parse_digits(buf, at + 12, 2)
    ss, ok_s = parse_digits(buf, at + 15, 2)
    if not (ok_y and ok_m and ok_d and ok_h and ok_mm and ok_s):
        return -1
    if m < 1 or m > 12 or d < 1 or d > 31 or hh > 23 or mm > 59 or ss > 60:
        return -1
    # days_from_civil (inverse of civil_from_days)
    yy = y - (1 if m <= 2 else 0)
    era = (yy if yy >= 0 else yy - 399) // 400
    yoe = yy - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    ns = (days * 86400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000
    if n > 17:
        if buf[at + 17] != 46 or n - 18 > 9 or n == 18:
            return -1
        frac, ok = parse_digits(buf, at + 18, n - 18)
        if not ok:
            return -1
        for _ in range(9 - (n - 18)):
            frac *= 10
        ns += frac
    return ns


@njit(cache=True, _nrt=False)
def symbol_id(symbols, buf, at, n):
    """Row of ``symbols`` (uint8 [n_sym, 16], zero padded) equal to ``buf[at:at+n]``."""
    if n > symbols.shape[1]:
        return -1
    for s in range(symbols.shape[0]):
        if n < symbols.shape[1] and symbols[s, n] != 0:
            continue
        match = True
        for i in range(n):
            if symbols[s, i] != buf[at + i]:
                match = False
                break
        if match:
            return s
    return -1


@njit(cache=True, _nrt=False, inline="always")
def _fail(f, err, e, tag):
    """Keep the first error (and its tag): ``err`` so far, ``e`` the new one."""
    if err == E_NONE and e != E_NONE:
        f[F_ERROR_TAG] = tag
        return e
    return err


@njit(cache=True, _nrt=False, inline="always")
def _int_field(f, err, field, buf, vat, n, tag):
    """An integer field: ``f[field]`` from the value, a bad number kept as the error."""
    v, ok = parse_int(buf, vat, n)
    f[field] = v
    return err if ok else _fail(f, err, E_BAD_NUMBER, tag)


@njit(cache=True, _nrt=False)
def _value_end(buf, pos, end):
    """(position of the SOH ending the value at ``pos`` or -1, whether it holds a NUL)."""
    nul = False
    while pos < end:
        c = buf[pos]
        if c == SOH:
            return pos, nul
        if c == 0:
            nul = True
        pos += 1
    return -1, nul


@njit(cache=True, _nrt=False)
def _check_report(f, err):
    """What booking an ExecutionReport needs: ExecType and OrdStatus, and for a fill LastPx,
    LastQty (both > 0) and CumQty, so it is booked exactly and at most once."""
    if f[F_EXEC_TYPE] == 0:
        return _fail(f, err, E_MISSING_FIELD, 150)
    if f[F_ORD_STATUS] == 0:
        return _fail(f, err, E_MISSING_FIELD, 39)
    et = f[F_EXEC_TYPE]
    if et == FIX_TRADE or et == FIX_PARTIAL or et == FIX_FILLED:
        mask = f[F_MASK]
        if not mask & M_LAST_PX:
            return _fail(f, err, E_MISSING_FIELD, 31)
        if not mask & M_LAST_QTY:
            return _fail(f, err, E_MISSING_FIELD, 32)
        if not mask & M_CUM_QTY:
            return _fail(f, err, E_MISSING_FIELD, 14)
        if f[F_LAST_PX] <= 0:
            return _fail(f, err, E_OUT_OF_RANGE, 31)
        if f[F_LAST_QTY] <= 0:
            return _fail(f, err, E_OUT_OF_RANGE, 32)
    return err


@njit(cache=True, _nrt=False)
def parse(buf, start, length, syms, f, spans):
    """Fill field vector ``f`` from the framed message ``buf[start:start+length]``
    (``syms``: ``Symbols``; ``spans``: int64[SPAN_WORDS] scratch, so nothing is allocated
    per message).

    Strict about what could alias: a tag number must be digits without a leading zero (at
    most MAX_TAG_DIGITS), every field needs '=' and a value without NUL, and a tag this
    codec reads may appear once. Returns F_ERROR's value (E_NONE when every field was
    usable; F_ERROR_TAG names the first bad one)."""
    f[:] = 0
    f[F_SYMBOL_ID] = -1
    f[F_TEXT_AT] = -1
    pos = start
    end = start + length
    err = E_NONE
    seen = 0
    num_at = spans[:6]  # value offsets of price/qty fields, resolved at the end
    num_len = spans[6:SPAN_WORDS]
    while pos < end:
        tag = 0
        digits = 0
        tag_ok = True
        while pos < end and buf[pos] != 61 and buf[pos] != SOH:
            c = buf[pos]
            if c < 48 or c > 57 or (digits == 0 and c == 48) or digits >= MAX_TAG_DIGITS:
                tag_ok = False
            else:
                tag = tag * 10 + (c - 48)
            digits += 1
            pos += 1
        if pos >= end:
            break
        if buf[pos] == SOH or digits == 0 or not tag_ok:  # no '=', or no valid tag number
            err = _fail(f, err, E_BAD_TAG, 0)
            vend, nul = _value_end(buf, pos, end)
            if vend < 0:
                break
            pos = vend + 1
            continue
        vat = pos + 1
        vend, nul = _value_end(buf, vat, end)
        if vend < 0:
            break
        n = vend - vat
        pos = vend + 1
        if n == 0:
            err = _fail(f, err, E_EMPTY_VALUE, tag)
            continue
        if nul:
            err = _fail(f, err, E_BAD_CHAR, tag)
            continue
        bit = TAG_BIT[tag] if tag < TAG_BIT.shape[0] else (
            BIT_434 if tag == 434 else BIT_531 if tag == 531 else
            BIT_25016 if tag == 25016 else -1)
        if bit >= 0:
            if seen & (np.int64(1) << bit):
                err = _fail(f, err, E_REPEATED_TAG, tag)
                continue
            seen |= np.int64(1) << bit
        c0 = buf[vat]
        if tag == 35:
            f[F_MSG_TYPE] = c0 | ((np.int64(buf[vat + 1]) << 8) if n > 1 else 0) | \
                ((np.int64(buf[vat + 2]) << 16) if n > 2 else 0)
        elif tag == 34:
            err = _int_field(f, err, F_SEQ, buf, vat, n, tag)
        elif tag == 49:
            f[F_SENDER_AT] = vat
            f[F_SENDER_LEN] = n
        elif tag == 56:
            f[F_TARGET_AT] = vat
            f[F_TARGET_LEN] = n
        elif tag == 43:
            f[F_POSS_DUP] = 1 if c0 == 89 else 0
        elif tag == 52 or tag == 60:
            t = parse_time(buf, vat, n)
            f[F_SENDING_TIME if tag == 52 else F_TRANSACT_TIME] = t
            if t < 0:
                err = _fail(f, err, E_BAD_TIME, tag)
        elif tag == 11:
            f[F_CL_ORD_ID] = parse_id(buf, vat, n)
        elif tag == 41:
            f[F_ORIG_CL_ORD_ID] = parse_id(buf, vat, n)
        elif tag == 37:
            f[F_ORDER_ID] = parse_id(buf, vat, n)
        elif tag == 17:
            f[F_EXEC_ID] = parse_id(buf, vat, n)
        elif tag == 150:
            f[F_EXEC_TYPE] = c0
        elif tag == 39:
            f[F_ORD_STATUS] = c0
        elif tag == 54:
            f[F_SIDE] = c0
        elif tag == 55:
            f[F_SYMBOL_ID] = symbol_id(syms.names, buf, vat, n)
            if f[F_SYMBOL_ID] < 0:
                err = _fail(f, err, E_UNKNOWN_SYMBOL, tag)
        elif tag == 103 or tag == 102 or tag == 434:
            err = _int_field(f, err, F_ORD_REJ_REASON if tag == 103 else (
                F_CXL_REJ_REASON if tag == 102 else F_CXL_REJ_RESPONSE_TO), buf, vat, n, tag)
        elif tag == 58:
            f[F_TEXT_AT] = vat
            f[F_TEXT_LEN] = n
        elif tag == 25016:
            err = _int_field(f, err, F_ERROR_CODE, buf, vat, n, tag)
        elif tag == 531:
            f[F_MASS_RESPONSE] = c0
        else:
            k = -1
            if tag == 44:
                k = 0
            elif tag == 31:
                k = 1
            elif tag == 32:
                k = 2
            elif tag == 14:
                k = 3
            elif tag == 151:
                k = 4
            elif tag == 38:
                k = 5
            if k >= 0:
                num_at[k] = vat
                num_len[k] = n
                f[F_MASK] |= 1 << k
    sid = f[F_SYMBOL_ID]
    for k in range(6):
        if f[F_MASK] & (1 << k):
            tag = NUM_TAGS[k]
            if sid < 0:
                err = _fail(f, err, E_UNKNOWN_SYMBOL, 55)
                continue
            row = syms.grid[sid]
            if k < 2:
                v, e = parse_units(buf, num_at[k], num_len[k], row["tick_units"],
                                   row["price_decimals"])
            else:
                v, e = parse_units(buf, num_at[k], num_len[k], row["lot_units"],
                                   row["qty_decimals"])
            f[F_PRICE + k] = v
            err = _fail(f, err, e, tag)
    if f[F_MSG_TYPE] == MSG_EXEC_REPORT:
        err = _check_report(f, err)
    f[F_ERROR] = err
    return err


def comp_id_block(sender: str, target: str) -> np.ndarray:
    """The prebuilt ``49=SENDER|56=TARGET|`` bytes every outbound header carries."""
    return np.frombuffer(f"49={sender}\x0156={target}\x01".encode(), np.uint8).copy()


@njit(cache=True, _nrt=False)
def encode_exec_report(buf, comp_ids, seq, now_ns, er, symbol, grid):
    """ExecutionReport (35=8): the acceptor side, for test venues and the round-trip bench.
    ``er``: an EXEC_FIELDS record."""
    pos = begin_body(buf, MSG_EXEC_REPORT, comp_ids, seq, now_ns)
    pos = put_int_field(buf, pos, 37, er["order_id"])
    pos = put_int_field(buf, pos, 11, er["cl_ord_id"])
    pos = put_int_field(buf, pos, 17, er["exec_id"])
    pos = put_char_field(buf, pos, 150, er["exec_type"])
    pos = put_char_field(buf, pos, 39, er["ord_status"])
    pos = put_symbol_side(buf, pos, symbol, er["side"])
    pos = put_qty(buf, pos, 38, er["qty"], grid)
    pos = put_price(buf, pos, 44, er["price"], grid)
    pos = put_qty(buf, pos, 32, er["last_qty"], grid)
    pos = put_price(buf, pos, 31, er["last_px"], grid)
    pos = put_qty(buf, pos, 14, er["cum_qty"], grid)
    pos = put_qty(buf, pos, 151, er["leaves_qty"], grid)
    pos = put_time_field(buf, pos, 60, now_ns)
    return finish(buf, pos)
