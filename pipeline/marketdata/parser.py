"""Binance JSON -> parsed-message arrays, in numba, with no Python object per message.

``parse_message(buf, start, end, hdr, lv)`` reads one message (a combined-stream wrapper
``{"stream":..,"data":{..}}``, a raw stream event, or a REST depth snapshot) and returns
its kind (> 0) or ``-reason`` (< 0). Fields land in ``hdr`` (int64, ``HDR_WORDS``; the
``H_*`` indices) and depth/snapshot levels in ``lv`` (int64 rows ``[side, price mantissa,
price decimals, qty mantissa, qty decimals]``). Decimals are kept as exact
``(mantissa, decimals)``; converting to ticks/lots is ``normalize``'s job.

Keys may come in any order; unknown keys and unknown events are skipped. Only the event's
own members count: in a wrapper, members beside ``data`` never reach ``hdr``, and a key
the parser reads that appears twice in one object (``"b"`` twice, ``"b"`` and ``"bids"``,
two ``data``) rejects the frame (``duplicate_key``) instead of merging. Values are
type-checked by key (``"a"`` is an array in a depth event, a price string in a bookTicker
and an integer in an aggTrade). Malformed input (truncated, wrong types, bad numbers, too
many levels, nesting too deep) rejects the message with a reason, never raises.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.marketdata.events import ASK, BID
from pipeline.units import scan_int

# ---- message kinds (return value > 0)
K_DEPTH, K_SNAPSHOT, K_TRADE, K_AGGTRADE, K_BOOKTICKER, K_OTHER = 1, 2, 3, 4, 5, 6
KIND_NAMES = {K_DEPTH: "depth", K_SNAPSHOT: "snapshot", K_TRADE: "trade",
              K_AGGTRADE: "aggTrade", K_BOOKTICKER: "bookTicker", K_OTHER: "other"}

# ---- reject reasons (return value -reason)
(R_TRUNCATED, R_SYNTAX, R_WRONG_TYPE, R_BAD_NUMBER, R_TOO_MANY_LEVELS, R_MISSING_FIELD,
 R_OFF_GRID, R_UNKNOWN_SYMBOL, R_TOO_DEEP, R_DUPLICATE_KEY) = range(1, 11)
REASON_NAMES = ["", "truncated", "syntax", "wrong_type", "bad_number", "too_many_levels",
                "missing_field", "off_grid", "unknown_symbol", "too_deep", "duplicate_key"]
N_REASONS = len(REASON_NAMES)

# ---- hdr words
(H_KIND, H_EV, H_SEEN, H_E, H_T, H_FIRST, H_LAST, H_PREV, H_SNAP_ID, H_SYM_OFF, H_SYM_LEN,
 H_NLEV, H_TRADE_ID, H_BUYER_MAKER, H_PX_M, H_PX_D, H_QTY_M, H_QTY_D, H_PX2_M, H_PX2_D,
 H_QTY2_M, H_QTY2_D, H_AGG_ID) = range(23)
HDR_WORDS = 24
# ---- lv columns
L_SIDE, L_PM, L_PD, L_QM, L_QD = range(5)
LV_COLS = 5

# ---- event names ("e")
EV_NONE, EV_DEPTH, EV_TRADE, EV_AGG, EV_BT, EV_OTHER = range(6)
# ---- seen bits
S_ENAME, S_E, S_T, S_SYM, S_U, S_LU, S_PU, S_LUID = 1, 2, 4, 8, 16, 32, 64, 128
S_BIDS, S_ASKS, S_BSTR, S_ASTR, S_BQ, S_AQ = 256, 512, 1024, 2048, 4096, 8192
S_P, S_Q, S_M, S_TID, S_AID = 1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18

MAX_DEPTH = 32
MAX_SIG = 18  # significant digits of a decimal (always fits an int64)
# (5**k)**-1 mod 2**64: exact division by 10**k = shift by k, then multiply by this
INV5 = np.array([pow(5**k, -1, 1 << 64) for k in range(MAX_SIG + 1)], np.uint64).view(np.int64)

# ---- keys
(KEY_OTHER, KEY_e, KEY_E, KEY_T, KEY_s, KEY_U, KEY_u, KEY_pu, KEY_b, KEY_a, KEY_B, KEY_A,
 KEY_p, KEY_q, KEY_m, KEY_t, KEY_bids, KEY_asks, KEY_data, KEY_stream, KEY_symbol,
 KEY_luid) = range(22)


def _lit(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8).copy()


LIT_BIDS, LIT_ASKS, LIT_DATA = _lit("bids"), _lit("asks"), _lit("data")
LIT_STREAM, LIT_SYMBOL, LIT_LUID = _lit("stream"), _lit("symbol"), _lit("lastUpdateId")
LIT_DEPTH, LIT_TRADE, LIT_AGG, LIT_BT = (_lit("depthUpdate"), _lit("trade"), _lit("aggTrade"),
                                         _lit("bookTicker"))
LIT_TRUE, LIT_FALSE = _lit("true"), _lit("false")
ONE_CHAR_KEYS = np.zeros(128, np.int64)
for _ch, _key in (("e", KEY_e), ("E", KEY_E), ("T", KEY_T), ("s", KEY_s), ("U", KEY_U),
                  ("u", KEY_u), ("b", KEY_b), ("a", KEY_a), ("B", KEY_B), ("A", KEY_A),
                  ("p", KEY_p), ("q", KEY_q), ("m", KEY_m), ("t", KEY_t)):
    ONE_CHAR_KEYS[ord(_ch)] = _key


@njit(cache=True, _nrt=False, inline="always")
def span_eq(b, s, e, lit):
    if e - s != lit.shape[0]:
        return False
    for k in range(lit.shape[0]):
        if b[s + k] != lit[k]:
            return False
    return True


@njit(cache=True, _nrt=False)
def key_code(b, s, e):
    n = e - s
    if n == 1:
        c = b[s]
        return ONE_CHAR_KEYS[c] if c < 128 else KEY_OTHER
    if n == 2:
        return KEY_pu if b[s] == 112 and b[s + 1] == 117 else KEY_OTHER  # "pu"
    if span_eq(b, s, e, LIT_BIDS):
        return KEY_bids
    if span_eq(b, s, e, LIT_ASKS):
        return KEY_asks
    if span_eq(b, s, e, LIT_DATA):
        return KEY_data
    if span_eq(b, s, e, LIT_STREAM):
        return KEY_stream
    if span_eq(b, s, e, LIT_SYMBOL):
        return KEY_symbol
    if span_eq(b, s, e, LIT_LUID):
        return KEY_luid
    return KEY_OTHER


@njit(cache=True, _nrt=False)
def event_code(b, s, e):
    if span_eq(b, s, e, LIT_DEPTH):
        return EV_DEPTH
    if span_eq(b, s, e, LIT_TRADE):
        return EV_TRADE
    if span_eq(b, s, e, LIT_AGG):
        return EV_AGG
    if span_eq(b, s, e, LIT_BT):
        return EV_BT
    return EV_OTHER


# ---------------------------------------------------------------- lexical helpers
@njit(cache=True, _nrt=False, inline="always")
def skip_ws(b, i, n):
    while i < n:
        c = b[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            return i
        i += 1
    return i


@njit(cache=True, _nrt=False, inline="always")
def scan_string(b, i, n):
    """``b[i]`` is the opening quote; position after the closing quote, or -reason."""
    i += 1
    while i < n:
        c = b[i]
        if c == 34:
            return i + 1
        if c == 92:  # backslash: skip the escaped byte
            i += 2
            continue
        if c < 32:
            return -R_SYNTAX
        i += 1
    return -R_TRUNCATED


@njit(cache=True, _nrt=False, inline="always")
def _is_scalar_byte(c):
    return (48 <= c <= 57) or (97 <= c <= 122) or c == 45 or c == 43 or c == 46 or c == 69


@njit(cache=True, _nrt=False)
def skip_value(b, i, n):
    """Skip any JSON value (unknown fields); position after it, or -reason."""
    if i >= n:
        return -R_TRUNCATED
    c = b[i]
    if c == 34:
        return scan_string(b, i, n)
    if c != 123 and c != 91:
        j = i
        while j < n and _is_scalar_byte(b[j]):
            j += 1
        if j == i:
            return -R_SYNTAX
        return j if j < n else -R_TRUNCATED
    depth = 0
    while i < n:
        c = b[i]
        if c == 34:
            i = scan_string(b, i, n)
            if i < 0:
                return i
            continue
        if c == 123 or c == 91:
            depth += 1
            if depth > MAX_DEPTH:
                return -R_TOO_DEEP
        elif c == 125 or c == 93:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -R_TRUNCATED


@njit(cache=True, _nrt=False, inline="always")
def parse_int(b, i, n):
    """JSON integer -> (value, position after) or (0, -reason) (``pipeline.units``)."""
    if i >= n:
        return 0, -R_TRUNCATED
    v, j, digits = scan_int(b, i, n)
    if digits < 0:
        return 0, -R_BAD_NUMBER
    if digits == 0:
        if j >= n:
            return 0, -R_TRUNCATED
        return 0, -(R_BAD_NUMBER if b[i] == 45 else R_WRONG_TYPE)
    if j < n and (b[j] == 46 or b[j] == 101 or b[j] == 69):
        return 0, -R_WRONG_TYPE  # a fraction or exponent where an integer belongs
    return v, j


@njit(cache=True, _nrt=False, inline="always")
def parse_decimal(b, i, n):
    """Quoted non-negative decimal ("61837.63000000") -> (mantissa, decimals, position),
    trailing fractional zeros dropped; position is -reason on error.

    Fast path (at most MAX_SIG digits in all, every Binance value): accumulate every
    digit, count trailing fractional zeros, then divide them out exactly with a shift and
    a multiply by the inverse of 5**k mod 2**64 (no division instruction). Longer
    strings (leading/trailing zero padding) take ``parse_decimal_long``."""
    if i >= n:
        return 0, 0, -R_TRUNCATED
    if b[i] != 34:
        return 0, 0, -R_WRONG_TYPE
    j = i + 1
    mant = 0
    start = j
    while j < n:
        d = np.int64(b[j]) - 48
        if d < 0 or d > 9:
            break
        mant = mant * 10 + d
        j += 1
    digits = j - start
    if j >= n:
        return 0, 0, -R_TRUNCATED
    if digits == 0:
        return 0, 0, -R_BAD_NUMBER
    dec = 0
    tz = 0
    if b[j] == 46:
        j += 1
        frac = j
        while j < n:
            d = np.int64(b[j]) - 48
            if d < 0 or d > 9:
                break
            mant = mant * 10 + d
            tz = tz + 1 if d == 0 else 0
            j += 1
        dec = j - frac
        if j >= n:
            return 0, 0, -R_TRUNCATED
        if dec == 0:
            return 0, 0, -R_BAD_NUMBER
    if b[j] != 34:
        return 0, 0, -R_BAD_NUMBER
    if digits + dec > MAX_SIG:
        return parse_decimal_long(b, i, n)
    if tz:
        mant = (mant >> tz) * INV5[tz]  # exact: mant is a multiple of 10**tz
        dec -= tz
    return mant, dec, j + 1


@njit(cache=True, _nrt=False)
def parse_decimal_long(b, i, n):
    """``parse_decimal`` for strings longer than MAX_SIG digits: zeros are only counted
    when significant, so "000000000000000000001.5000000000000000000" still parses."""
    if i >= n:
        return 0, 0, -R_TRUNCATED
    if b[i] != 34:
        return 0, 0, -R_WRONG_TYPE
    i += 1
    mant = 0
    sig = 0  # significant digits in mant
    start = i
    while i < n:  # integer part
        d = np.int64(b[i]) - 48
        if d < 0 or d > 9:
            break
        if sig or d:
            if sig == MAX_SIG:
                return 0, 0, -R_BAD_NUMBER
            mant = mant * 10 + d
            sig += 1
        i += 1
    if i >= n:
        return 0, 0, -R_TRUNCATED
    if i == start:
        return 0, 0, -R_BAD_NUMBER  # no integer digits: "", ".5", "-1"
    dec = 0
    if b[i] == 46:
        i += 1
        frac = i
        zeros = 0  # pending zeros: significant only if a non-zero digit follows
        while i < n:
            d = np.int64(b[i]) - 48
            if d < 0 or d > 9:
                break
            if d == 0:
                zeros += 1
            else:
                if sig:
                    if sig + zeros + 1 > MAX_SIG:
                        return 0, 0, -R_BAD_NUMBER
                    for _ in range(zeros + 1):
                        mant *= 10
                    sig += zeros + 1
                else:
                    sig = 1
                mant += d
                dec += zeros + 1
                zeros = 0
            i += 1
        if i == frac:
            return 0, 0, -R_BAD_NUMBER  # "1."
        if i >= n:
            return 0, 0, -R_TRUNCATED
    if b[i] != 34:
        return 0, 0, -R_BAD_NUMBER
    return mant, dec, i + 1


@njit(cache=True, _nrt=False)
def parse_levels(b, i, n, side, lv, nlev):
    """``[["price","qty"], ...]`` appended to ``lv`` from row ``nlev``:
    (position after, new row count); position is -reason on error."""
    if b[i] != 91:
        return -R_WRONG_TYPE, nlev
    i = skip_ws(b, i + 1, n)
    if i < n and b[i] == 93:
        return i + 1, nlev
    while True:
        if i >= n:
            return -R_TRUNCATED, nlev
        if b[i] != 91:
            return -R_WRONG_TYPE, nlev
        pm, pd, i = parse_decimal(b, skip_ws(b, i + 1, n), n)
        if i < 0:
            return i, nlev
        i = skip_ws(b, i, n)
        if i >= n:
            return -R_TRUNCATED, nlev
        if b[i] != 44:
            return -R_SYNTAX, nlev
        qm, qd, i = parse_decimal(b, skip_ws(b, i + 1, n), n)
        if i < 0:
            return i, nlev
        i = skip_ws(b, i, n)
        while i < n and b[i] == 44:  # tolerate extra elements (old spot API: [p, q, []])
            i = skip_value(b, skip_ws(b, i + 1, n), n)
            if i < 0:
                return i, nlev
            i = skip_ws(b, i, n)
        if i >= n:
            return -R_TRUNCATED, nlev
        if b[i] != 93:
            return -R_SYNTAX, nlev
        if nlev >= lv.shape[0]:
            return -R_TOO_MANY_LEVELS, nlev
        lv[nlev, L_SIDE] = side
        lv[nlev, L_PM] = pm
        lv[nlev, L_PD] = pd
        lv[nlev, L_QM] = qm
        lv[nlev, L_QD] = qd
        nlev += 1
        i = skip_ws(b, i + 1, n)
        if i >= n:
            return -R_TRUNCATED, nlev
        if b[i] == 93:
            return i + 1, nlev
        if b[i] != 44:
            return -R_SYNTAX, nlev
        i = skip_ws(b, i + 1, n)


@njit(cache=True, _nrt=False)
def _decimal_into(b, i, n, hdr, m_word, d_word):
    m, d, i = parse_decimal(b, i, n)
    hdr[m_word] = m
    hdr[d_word] = d
    return i


@njit(cache=True, _nrt=False)
def _bool_into(b, i, n, hdr, word):
    if span_eq(b, i, min(i + 4, n), LIT_TRUE):
        hdr[word] = 1
        return i + 4
    if span_eq(b, i, min(i + 5, n), LIT_FALSE):
        hdr[word] = 0
        return i + 5
    return -R_TRUNCATED if n - i < 5 and b[i] in (116, 102) else -R_WRONG_TYPE


@njit(cache=True, _nrt=False)
def _int_word(key):
    """hdr word and seen bit of an integer-valued key (-1 if the key is not one)."""
    if key == KEY_E:
        return H_E, S_E
    if key == KEY_T:
        return H_T, S_T
    if key == KEY_U:
        return H_FIRST, S_U
    if key == KEY_u:
        return H_LAST, S_LU
    if key == KEY_pu:
        return H_PREV, S_PU
    if key == KEY_luid:
        return H_SNAP_ID, S_LUID
    if key == KEY_t:
        return H_TRADE_ID, S_TID
    return -1, 0


@njit(cache=True, _nrt=False)
def _value(b, i, n, key, hdr, lv):
    """Parse the value of ``key`` at ``i`` into hdr/lv; returns (position, seen bit)."""
    c = b[i]
    word, bit = _int_word(key)
    if word >= 0:
        v, i = parse_int(b, i, n)
        hdr[word] = v
        return i, bit
    if key == KEY_e or key == KEY_s or key == KEY_symbol:
        if c != 34:
            return -R_WRONG_TYPE, 0
        j = scan_string(b, i, n)
        if j < 0:
            return j, 0
        if key == KEY_e:
            hdr[H_EV] = event_code(b, i + 1, j - 1)
            return j, S_ENAME
        hdr[H_SYM_OFF] = i + 1
        hdr[H_SYM_LEN] = j - 1 - (i + 1)
        return j, S_SYM
    if key == KEY_b or key == KEY_bids or key == KEY_a or key == KEY_asks:
        bid = key == KEY_b or key == KEY_bids
        if c == 91:
            i, hdr[H_NLEV] = parse_levels(b, i, n, BID if bid else ASK, lv, hdr[H_NLEV])
            return i, (S_BIDS if bid else S_ASKS)
        if c == 34 and key == KEY_b:
            return _decimal_into(b, i, n, hdr, H_PX_M, H_PX_D), S_BSTR
        if c == 34 and key == KEY_a:
            return _decimal_into(b, i, n, hdr, H_PX2_M, H_PX2_D), S_ASTR
        if c != 91 and c != 34:  # aggTrade id ("a"); buyer/seller order id in old trades
            v, i = parse_int(b, i, n)
            hdr[H_AGG_ID] = v
            return i, (S_AID if key == KEY_a else 0)
        return -R_WRONG_TYPE, 0
    if key == KEY_B:
        return _decimal_into(b, i, n, hdr, H_QTY_M, H_QTY_D), S_BQ
    if key == KEY_A:
        return _decimal_into(b, i, n, hdr, H_QTY2_M, H_QTY2_D), S_AQ
    if key == KEY_p:
        return _decimal_into(b, i, n, hdr, H_PX_M, H_PX_D), S_P
    if key == KEY_q:
        return _decimal_into(b, i, n, hdr, H_QTY_M, H_QTY_D), S_Q
    if key == KEY_m:
        return _bool_into(b, i, n, hdr, H_BUYER_MAKER), S_M
    return skip_value(b, i, n), 0


@njit(cache=True, _nrt=False)
def _key(b, i, n):
    """At a key's opening quote: (key code, position of its value) or (0, -reason)."""
    if i >= n:
        return 0, -R_TRUNCATED
    if b[i] != 34:
        return 0, -R_SYNTAX
    j = scan_string(b, i, n)
    if j < 0:
        return 0, j
    key = key_code(b, i + 1, j - 1)
    j = skip_ws(b, j, n)
    if j >= n:
        return 0, -R_TRUNCATED
    if b[j] != 58:
        return 0, -R_SYNTAX
    j = skip_ws(b, j + 1, n)
    if j >= n:
        return 0, -R_TRUNCATED
    return key, j


@njit(cache=True, _nrt=False)
def _after_value(b, i, n):
    """After a member: (position of the next key, done?) or (-reason, True)."""
    i = skip_ws(b, i, n)
    if i >= n:
        return -R_TRUNCATED, True
    if b[i] == 44:
        return skip_ws(b, i + 1, n), False
    if b[i] == 125:
        return i + 1, True
    return -R_SYNTAX, True


@njit(cache=True, _nrt=False)
def parse_members(b, i, n, hdr, lv):
    """The object at ``b[i] == '{'``: an event itself, or a wrapper whose ``data`` member
    holds the event (descended into in the same loop: no recursion, which numba's cache
    does not survive). A wrapper's members after ``stream`` (Binance sends it first) or
    after ``data`` are skipped; entering ``data`` clears whatever members before them put
    in ``hdr`` (one of those with a wrong type still rejects the frame). ``keys`` (one bit
    per key code, per object) and ``seen`` catch a repeated key. Returns the position
    after the object, or -reason."""
    i = skip_ws(b, i + 1, n)
    if i < n and b[i] == 125:
        return i + 1
    seen = 0
    keys = 0  # key codes met in the current object (KEY_OTHER is never recorded)
    outer = 0  # the wrapper's key codes while inside its data object
    depth = 0
    wrapped = False  # a data object was read: the wrapper's other members are not the event
    while True:
        key, i = _key(b, i, n)
        if i < 0:
            return i
        if key != KEY_OTHER:
            bit = np.int64(1) << key
            if keys & bit:
                return -R_DUPLICATE_KEY
            keys |= bit
        if depth == 0 and key == KEY_data and b[i] == 123:
            reset(hdr)  # the event replaces anything the wrapper said before it
            seen = 0
            wrapped = True
            outer, keys = keys, 0
            depth = 1
            i = skip_ws(b, i + 1, n)
            if i >= n or b[i] != 125:
                continue  # the event's members
            i += 1  # an empty data object
            depth = 0
            keys = outer
        elif depth == 0 and (wrapped or key == KEY_stream):
            wrapped = True  # "stream" names a wrapper: its other members are not the event
            i = skip_value(b, i, n)
            if i < 0:
                return i
        else:
            i, bit = _value(b, i, n, key, hdr, lv)
            if i < 0:
                return i
            if seen & bit:
                return -R_DUPLICATE_KEY  # an alias of a key already read ("b" and "bids")
            seen |= bit
        while True:
            i, done = _after_value(b, i, n)
            if i < 0 or not done:
                break
            if depth == 0:
                hdr[H_SEEN] = seen
                return i
            depth = 0  # the data object closed: continue with the wrapper's members
            keys = outer
        if i < 0:
            return i


@njit(cache=True, _nrt=False)
def _has(seen, bits):
    return seen & bits == bits


@njit(cache=True, _nrt=False)
def classify(hdr):
    seen = hdr[H_SEEN]
    ev = hdr[H_EV]
    if ev == EV_DEPTH:
        ok = _has(seen, S_SYM | S_U | S_LU | S_BIDS | S_ASKS)
        return K_DEPTH if ok else -R_MISSING_FIELD
    if ev == EV_NONE and seen & S_LUID:
        return K_SNAPSHOT if _has(seen, S_BIDS | S_ASKS) else -R_MISSING_FIELD
    if ev == EV_TRADE:
        return K_TRADE if _has(seen, S_SYM | S_P | S_Q | S_TID) else -R_MISSING_FIELD
    if ev == EV_AGG:
        hdr[H_TRADE_ID] = hdr[H_AGG_ID]
        return K_AGGTRADE if _has(seen, S_SYM | S_P | S_Q | S_AID) else -R_MISSING_FIELD
    if ev == EV_BT or (ev == EV_NONE and seen & S_BSTR and seen & S_LU):
        ok = _has(seen, S_SYM | S_LU | S_BSTR | S_ASTR | S_BQ | S_AQ)
        return K_BOOKTICKER if ok else -R_MISSING_FIELD
    return K_OTHER


@njit(cache=True, _nrt=False)
def reset(hdr):
    hdr[:] = 0
    hdr[H_PREV] = -1
    hdr[H_SYM_OFF] = -1


@njit(cache=True, _nrt=False)
def parse_message(b, start, end, hdr, lv):
    """Parse ``b[start:end]``; returns the kind (> 0) or -reason. See the module doc."""
    reset(hdr)
    i = skip_ws(b, start, end)
    if i >= end:
        return -R_TRUNCATED
    if b[i] != 123:
        return -R_SYNTAX
    i = parse_members(b, i, end, hdr, lv)
    if i < 0:
        hdr[H_KIND] = i
        return i
    if skip_ws(b, i, end) != end:
        hdr[H_KIND] = -R_SYNTAX
        return -R_SYNTAX
    kind = classify(hdr)
    hdr[H_KIND] = kind
    return kind


def new_buffers(max_levels: int = 10_240) -> tuple[np.ndarray, np.ndarray]:
    """``(hdr, lv)`` scratch arrays for ``parse_message``."""
    return np.zeros(HDR_WORDS, np.int64), np.zeros((max_levels, LV_COLS), np.int64)
