"""The Binance Spot FIX order-entry dialect (``fix-api.md``, ``fix/spot-fix-oe.xml``).

Binance speaks FIX 4.4 framing with its own session rules and messages:

- Logon: ``95``/``96`` = the base64 Ed25519 signature of
  ``MsgType␁SenderCompID␁TargetCompID␁MsgSeqNum␁SendingTime``, ``553`` = the API key,
  ``141=Y`` (sequence numbers restart at every logon), ``25035`` MessageHandling and
  ``25036`` ResponseMode, ``56=SPOT``;
- a SenderCompID (``^[A-Za-z0-9-_]{1,8}$``) unique among the account's live sessions, and
  locked for 2 x HeartBtInt after a disconnect without Logout: ``new_comp_id`` makes a
  fresh one for every session, so a restarted gateway is never locked out;
- no ResendRequest, no SequenceReset, no ``G``, no ``H``: an inbound gap is a Logout and a
  reconnect, and the OMS reconciles from the REST API (``pipeline.binance``);
- replace is ``XCN`` (cancel + a brand-new order) or ``XAK`` (amend keep priority,
  quantity down only); mass cancel ``q``; ``XLQ``/``XLR`` report the session's limits;
  post-only is ``LIMIT_MAKER`` (``40=2|18=6``, no TimeInForce).

The jitted encoders below write exactly the tags the schema defines for each message
(``tests/test_binance_spot.py`` checks them against the XML), reusing the field writers
of ``pipeline.fix.codec`` (shared with the FIX 4.4 dialect). ``DIALECT`` is the record the
gateway's jitted flow reads to choose between the two dialects.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from pipeline import config as cfgmod
from pipeline.binance.keys import Signer, load_signer
from pipeline.fix import codec as C
from shm_layouts.records import FixDialect, OrderType, ReplaceMode, TimeInForce

log = logging.getLogger(__name__)

TARGET = "SPOT"
DEFAULT_RECV_WINDOW_MS = 5000  # what Binance assumes for a Logon without RecvWindow (25000)
COMP_ID_LEN = 8  # every generated SenderCompID has this length: the header block keeps
# its size, so the jitted encoders' prebuilt ``49=..|56=..|`` is rewritten in place
COMP_ID = re.compile(r"^[A-Za-z0-9_-]{1,8}$")
CL_ORD_ID = re.compile(r"^[a-zA-Z0-9_-]{1,36}$")
_ALPHABET = string.ascii_letters + string.digits

# the record the jitted flow reads (a 1-element array, built once per session)
DIALECT = np.dtype([("kind", "u1"),  # FixDialect
                    ("replace_mode", "u1"),  # ReplaceMode of XCN (25033)
                    ("draining", "u1"),  # 1: a session being replaced (maintenance)
                    ("_pad", "u1", (5,))])

MESSAGE_HANDLING = {"unordered": 1, "sequential": 2}  # 25035
RESPONSE_MODE = {"everything": 1, "only_acks": 2}  # 25036
REPLACE_MODES = {"stop_on_failure": ReplaceMode.STOP_ON_FAILURE,
                 "allow_failure": ReplaceMode.ALLOW_FAILURE}
# XLR LimitType (25004) and LimitResetIntervalResolution (25008)
ORDER_LIMIT, MESSAGE_LIMIT = "1", "2"
RESOLUTION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

MASS_CANCEL_SYMBOL = ord("1")  # 530 MassCancelRequestType CANCEL_SYMBOL_ORDERS
MARKET = int(OrderType.MARKET)
IOC, FOK, POST_ONLY = int(TimeInForce.IOC), int(TimeInForce.FOK), int(TimeInForce.POST_ONLY)

T_XCN = np.frombuffer(b"XCN", np.uint8).copy()
T_XAK = np.frombuffer(b"XAK", np.uint8).copy()
T_D = np.frombuffer(b"D", np.uint8).copy()
T_F = np.frombuffer(b"F", np.uint8).copy()
T_Q = np.frombuffer(b"q", np.uint8).copy()


def dialect_record(kind: FixDialect = FixDialect.FIX44,
                   replace_mode: ReplaceMode = ReplaceMode.STOP_ON_FAILURE) -> np.ndarray:
    r = np.zeros(1, DIALECT)
    r[0]["kind"] = int(kind)
    r[0]["replace_mode"] = int(replace_mode)
    return r


# ------------------------------------------------------------------------------ encoders
@njit(cache=True, _nrt=False)
def begin(buf, msg, comp_ids, seq, now_ns):
    """``35=<msg>|`` (one to three chars), the ``49=..|56=..|`` block, 34 and 52."""
    pos = C.put_tag(buf, C.BODY_AT, 35)
    pos = C.put_bytes(buf, pos, msg)
    buf[pos] = C.SOH
    pos = C.put_bytes(buf, pos + 1, comp_ids)
    pos = C.put_int_field(buf, pos, 34, seq)
    return C.put_time_field(buf, pos, 52, now_ns)


@njit(cache=True, _nrt=False)
def put_new_order(buf, pos, o, qty, symbol, grid):
    """The NewOrder component after ClOrdID: OrderQty, OrdType, ExecInst (LIMIT_MAKER),
    Price, Side, Symbol, TimeInForce (none for MARKET and LIMIT_MAKER)."""
    pos = C.put_qty(buf, pos, 38, qty, grid)
    market = o["ord_type"] == MARKET
    pos = C.put_char_field(buf, pos, 40, 49 if market else 50)  # '1' MARKET, '2' LIMIT
    tif = o["tif"]
    if not market and tif == POST_ONLY:
        pos = C.put_char_field(buf, pos, 18, 54)  # '6': LIMIT_MAKER
    if not market:
        pos = C.put_price(buf, pos, 44, o["price"], grid)
    pos = C.put_symbol_side(buf, pos, symbol, o["side"])
    if not market and tif != POST_ONLY:
        pos = C.put_char_field(buf, pos, 59, 51 if tif == IOC else (52 if tif == FOK else 49))
    return pos


@njit(cache=True, _nrt=False)
def encode_new_order(buf, comp_ids, seq, now_ns, o, symbol, grid):
    """NewOrderSingle (35=D) of intent ``o`` (no TransactTime: the schema has none)."""
    pos = begin(buf, T_D, comp_ids, seq, now_ns)
    pos = C.put_int_field(buf, pos, 11, o["cl_ord_id"])
    return C.finish(buf, put_new_order(buf, pos, o, o["qty"], symbol, grid))


@njit(cache=True, _nrt=False)
def _order_ref(buf, pos, orig_cl_ord_id, venue_order_id):
    """OrigClOrdID (41) and, once the venue has assigned it, OrderID (37)."""
    pos = C.put_int_field(buf, pos, 41, orig_cl_ord_id)
    if venue_order_id > 0:
        pos = C.put_int_field(buf, pos, 37, venue_order_id)
    return pos


@njit(cache=True, _nrt=False)
def _put_symbol(buf, pos, symbol):
    pos = C.put_tag(buf, pos, 55)
    pos = C.put_bytes(buf, pos, symbol)
    buf[pos] = C.SOH
    return pos + 1


@njit(cache=True, _nrt=False)
def encode_cancel(buf, comp_ids, seq, now_ns, cl_ord_id, orig_cl_ord_id, venue_order_id,
                  symbol):
    """OrderCancelRequest (35=F): ClOrdID, OrigClOrdID, OrderID, Symbol."""
    pos = begin(buf, T_F, comp_ids, seq, now_ns)
    pos = C.put_int_field(buf, pos, 11, cl_ord_id)
    pos = _order_ref(buf, pos, orig_cl_ord_id, venue_order_id)
    return C.finish(buf, _put_symbol(buf, pos, symbol))


@njit(cache=True, _nrt=False)
def encode_cancel_new(buf, comp_ids, seq, now_ns, o, qty, venue_order_id, mode, symbol,
                      grid):
    """OrderCancelRequestAndNewOrderSingle (35=XCN): cancel ``o["orig_cl_ord_id"]`` and
    place ``o`` as a new order of ``qty`` lots (new ClOrdID ``o["cl_ord_id"]``); ``mode``
    is 25033 (ReplaceMode: STOP_ON_FAILURE / ALLOW_FAILURE)."""
    pos = begin(buf, T_XCN, comp_ids, seq, now_ns)
    pos = C.put_int_field(buf, pos, 25033, mode)
    pos = _order_ref(buf, pos, o["orig_cl_ord_id"], venue_order_id)
    pos = C.put_int_field(buf, pos, 11, o["cl_ord_id"])
    return C.finish(buf, put_new_order(buf, pos, o, qty, symbol, grid))


@njit(cache=True, _nrt=False)
def encode_amend(buf, comp_ids, seq, now_ns, cl_ord_id, orig_cl_ord_id, venue_order_id,
                 qty, symbol, grid):
    """OrderAmendKeepPriorityRequest (35=XAK): the order's quantity down to ``qty`` lots
    (its total OrderQty, filled part included), queue priority kept."""
    pos = begin(buf, T_XAK, comp_ids, seq, now_ns)
    pos = C.put_int_field(buf, pos, 11, cl_ord_id)
    pos = _order_ref(buf, pos, orig_cl_ord_id, venue_order_id)
    pos = _put_symbol(buf, pos, symbol)
    return C.finish(buf, C.put_qty(buf, pos, 38, qty, grid))


@njit(cache=True, _nrt=False)
def encode_mass_cancel(buf, comp_ids, seq, now_ns, cl_ord_id, symbol):
    """OrderMassCancelRequest (35=q): every open order of ``symbol`` (530=1)."""
    pos = begin(buf, T_Q, comp_ids, seq, now_ns)
    pos = C.put_int_field(buf, pos, 11, cl_ord_id)
    pos = _put_symbol(buf, pos, symbol)
    return C.finish(buf, C.put_char_field(buf, pos, 530, MASS_CANCEL_SYMBOL))


# ------------------------------------------------------------------------------ session
def sending_time(ns: int) -> str:
    """UTCTimestamp with milliseconds (what fix-api.md's examples send)."""
    secs, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs)) + f".{rem // 1_000_000:03d}"


def frame(body: str) -> bytes:
    """``8=FIX.4.4|9=<len>|`` + body + ``10=<checksum>|``."""
    raw = f"8=FIX.4.4\x019={len(body.encode())}\x01{body}".encode()
    return raw + f"10={sum(raw) % 256:03d}\x01".encode()


def new_comp_id(prefix: str = "") -> str:
    """A fresh SenderCompID: ``prefix`` then random letters/digits, COMP_ID_LEN chars."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(COMP_ID_LEN - len(prefix)))


def _choice(s: dict, key: str, table: dict):
    value = s[key]
    if value not in table:
        raise cfgmod.ConfigError(f"[gateway] {key} must be one of {', '.join(table)}, "
                                 f"not {value!r}")
    return table[value]


@dataclass
class Limits:
    """One XLR LimitIndicator: ``count`` of ``max`` used per ``interval_s``."""

    kind: str  # ORDER_LIMIT or MESSAGE_LIMIT
    count: int
    max: int
    interval_s: int


@dataclass
class BinanceSpot:
    """The dialect's session side: credentials (API key and signer, never shown), the
    Logon fields, the CompID rules; ``pre_logon`` (set by the gateway) may refuse a logon
    (the clock check) by returning the reason."""

    api_key: str = field(repr=False)
    signer: Signer = field(repr=False)
    comp_id_prefix: str = ""
    recv_window_ms: int = DEFAULT_RECV_WINDOW_MS
    message_handling: int = MESSAGE_HANDLING["sequential"]
    response_mode: int = RESPONSE_MODE["everything"]
    replace_mode: ReplaceMode = ReplaceMode.STOP_ON_FAILURE
    pre_logon: Callable[[], str | None] | None = field(default=None, repr=False)
    limit_queries: int = 0

    @classmethod
    def from_config(cls, section: dict, binance: dict) -> BinanceSpot:
        """``[gateway]`` under ``dialect = "binance-spot"`` (the Logon options;
        ``sender_comp_id`` is the prefix of the per-session CompIDs, ``target_comp_id``
        must be SPOT) and ``[binance]`` (the Ed25519 key file, the API key's environment
        variable, recv_window_ms: the same key signs the Logon and the REST requests)."""
        s = cfgmod.section("gateway", section)
        b = cfgmod.section("binance", binance)
        prefix = str(s["sender_comp_id"])
        if not re.fullmatch(r"[A-Za-z0-9_-]{0,4}", prefix):
            raise cfgmod.ConfigError(
                f"[gateway] sender_comp_id {prefix!r}: under binance-spot it is the prefix "
                "(at most 4 of A-Z a-z 0-9 - _) of a fresh 8-char SenderCompID per session")
        if s["target_comp_id"] != TARGET:
            raise cfgmod.ConfigError(f"[gateway] target_comp_id must be {TARGET} for "
                                     f"binance-spot, not {s['target_comp_id']!r}")
        if not b["private_key_file"]:
            raise cfgmod.ConfigError("[binance] private_key_file (an Ed25519 PEM) is "
                                     "required by [gateway] dialect = \"binance-spot\"")
        env = b["api_key_env"]
        if not env or not os.environ.get(env):
            raise cfgmod.ConfigError(f"[binance] api_key_env: the API key's variable "
                                     f"{env or '(none named)'} is not set")
        recv = int(b["recv_window_ms"])
        if not 0 < recv <= 60_000:
            raise cfgmod.ConfigError(f"[binance] recv_window_ms {recv}: 1..60000")
        if not 5 <= int(s["heartbeat_s"]) <= 60:
            raise cfgmod.ConfigError("[gateway] heartbeat_s must be 5..60 for binance-spot")
        return cls(api_key=os.environ[env],
                   signer=load_signer(Path(b["private_key_file"]).expanduser(),
                                      b["private_key_passphrase_env"]),
                   comp_id_prefix=prefix, recv_window_ms=recv,
                   message_handling=_choice(s, "message_handling", MESSAGE_HANDLING),
                   response_mode=_choice(s, "response_mode", RESPONSE_MODE),
                   replace_mode=_choice(s, "replace_mode", REPLACE_MODES))

    def record(self) -> np.ndarray:
        return dialect_record(FixDialect.BINANCE_SPOT, self.replace_mode)

    def new_comp_id(self) -> str:
        return new_comp_id(self.comp_id_prefix)

    def build(self, msg_type: str, pairs, sender: str, seq: int, sending: str,
              recv_window: bool = False) -> bytes:
        """A message from Python (admin messages, XLQ) with Binance's header order;
        ``recv_window``: RecvWindow (25000) in the header when it is not the default."""
        body = f"35={msg_type}\x0134={seq}\x0149={sender}\x0152={sending}\x0156={TARGET}\x01"
        if recv_window and self.recv_window_ms != DEFAULT_RECV_WINDOW_MS:
            body += f"25000={self.recv_window_ms}\x01"
        return frame(body + "".join(f"{t}={v}\x01" for t, v in pairs))

    def logon(self, sender: str, seq: int, sending: str, heartbeat_s: int) -> bytes:
        """The signed Logon (fix-api.md "How to sign Logon <A> request")."""
        payload = "\x01".join(["A", sender, TARGET, str(seq), sending]).encode("ascii")
        sig = self.signer.sign_b64(payload)
        pairs = [(95, len(sig)), (96, sig), (98, 0), (108, heartbeat_s), (141, "Y"),
                 (553, self.api_key), (25035, self.message_handling)]
        if self.response_mode != RESPONSE_MODE["everything"]:
            pairs.append((25036, self.response_mode))
        return self.build("A", pairs, sender, seq, sending, recv_window=True)

    def limit_query(self, sender: str, seq: int, sending: str) -> bytes:
        self.limit_queries += 1
        return self.build("XLQ", [(6136, f"L{time.time_ns()}")], sender, seq, sending)


def parse_limits(pairs) -> list[Limits]:
    """The LimitIndicators of an XLR (its ``(tag, value)`` pairs in order: the group)."""
    out: list[Limits] = []
    cur: dict[int, bytes] = {}
    for tag, value in pairs:
        t = int(tag)
        if t == 25004 and cur:
            out.append(_limit(cur))
            cur = {}
        if 25004 <= t <= 25008:
            cur[t] = value
    if cur:
        out.append(_limit(cur))
    return out


def _limit(g: dict[int, bytes]) -> Limits:
    interval = int(g.get(25007, b"1")) * RESOLUTION_S.get(g.get(25008, b"s").decode(), 0)
    return Limits(g[25004].decode(), int(g.get(25005, b"0")), int(g.get(25006, b"0")),
                  interval)


def per_second(limits: list[Limits], kind: str) -> int | None:
    """The tightest per-second budget of the ``kind`` limits over intervals of at most a
    minute (a daily unfilled-order budget is not a rate), None if there is none."""
    rates = [lim.max // max(lim.interval_s, 1) for lim in limits
             if lim.kind == kind and 0 < lim.interval_s <= 60]
    return min(rates) if rates else None


def countdown_s(headline: str) -> int | None:
    """Seconds left in a maintenance News headline ("You'll be disconnected in %d
    seconds..."; "about to be closed": 10), None if it is not a countdown."""
    m = re.search(r"disconnected in (\d+) seconds", headline)
    if m:
        return int(m.group(1))
    return 10 if "about to be closed" in headline else None
