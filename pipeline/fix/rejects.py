"""What the session does with inbound messages it cannot use (issue 18).

FIX answers an unusable message with a session Reject (35=3: RefSeqNum, RefTagID,
SessionRejectReason, Text) and consumes its sequence number; what breaks the session
(no MsgSeqNum, wrong CompIDs) gets a Logout. Each case has a kind here: the session counts
it (``fix.bad.<kind>``: every one is an error in the run's summary) and logs its first
occurrence. The jitted codec finds the
tag-level problems (``codec.E_*`` in the field vector); this module maps them to the
Reject, splits a message into fields for the Python session (never raising), and turns
a Reject of one of our own orders into the report the OMS understands.
"""

from __future__ import annotations

import enum

import numpy as np

from pipeline.fix import codec as C


class RejectReason(enum.IntEnum):
    """SessionRejectReason (373), the values used here."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_WITHOUT_VALUE = 4
    VALUE_OUT_OF_RANGE = 5
    INCORRECT_DATA_FORMAT = 6
    COMP_ID_PROBLEM = 9
    TAG_APPEARS_MORE_THAN_ONCE = 13
    OTHER = 99


R = RejectReason
# codec error -> (SessionRejectReason, kind)
OF_ERROR = {
    C.E_BAD_NUMBER: (R.INCORRECT_DATA_FORMAT, "bad_number"),
    C.E_OFF_GRID: (R.VALUE_OUT_OF_RANGE, "off_grid"),
    C.E_UNKNOWN_SYMBOL: (R.VALUE_OUT_OF_RANGE, "unknown_symbol"),
    C.E_BAD_TIME: (R.INCORRECT_DATA_FORMAT, "bad_time"),
    C.E_BAD_TAG: (R.INVALID_TAG_NUMBER, "bad_tag"),
    C.E_REPEATED_TAG: (R.TAG_APPEARS_MORE_THAN_ONCE, "repeated_tag"),
    C.E_EMPTY_VALUE: (R.TAG_WITHOUT_VALUE, "empty_value"),
    C.E_BAD_CHAR: (R.INCORRECT_DATA_FORMAT, "bad_char"),
    C.E_MISSING_FIELD: (R.REQUIRED_TAG_MISSING, "missing_field"),
    C.E_OUT_OF_RANGE: (R.VALUE_OUT_OF_RANGE, "out_of_range"),
    C.E_COMP_ID: (R.COMP_ID_PROBLEM, "comp_id"),
}
# every kind the session counts, so the counters exist (at 0) from the start
KINDS = (*(kind for _, kind in OF_ERROR.values()),
         "no_msg_type",  # treated as garbled: no Reject, sequence number not consumed
         "bad_seq_num",  # MsgSeqNum missing or not a number: Logout
         "bad_admin",  # an admin message without (or with a bad) required field
         "seq_reset_lower",  # SequenceReset-Reset to a number below the expected one
         "internal")  # a bug in the session's handling: Logout (never a crash)

FIX_REJECTED = ord("8")  # ExecType/OrdStatus Rejected
CXL_RESPONSE_CANCEL, CXL_RESPONSE_REPLACE = 1, 2  # CxlRejResponseTo (434)


def pairs(raw: bytes) -> list[tuple[int, bytes]]:
    """``raw``'s fields in order; a field whose tag is not a valid tag number gets tag -1
    (the codec has flagged it already). Never raises."""
    out = []
    for piece in raw.split(b"\x01")[:-1]:
        tag, eq, value = piece.partition(b"=")
        ok = eq and tag.isdigit() and tag[:1] != b"0" and len(tag) <= C.MAX_TAG_DIGITS
        out.append((int(tag) if ok else -1, value))
    return out


def first_of(fields: list[tuple[int, bytes]]) -> dict[int, bytes]:
    """Tag -> value, the first occurrence (a repeat is the codec's E_REPEATED_TAG)."""
    d: dict[int, bytes] = {}
    for tag, value in fields:
        d.setdefault(tag, value)
    return d


def whole(value: bytes | None, low: int = 1) -> int | None:
    """An unsigned decimal >= ``low``, or None (absent, signed, not digits, > int64)."""
    if not value or not value.isdigit():
        return None
    v = int(value)
    return v if low <= v < 2**63 else None


def order_reject(ours: bytes | None, by_id: int, reason: int) -> np.ndarray | None:
    """The report a Reject of our message ``ours`` (journaled bytes; else ``by_id``, a
    BusinessRejectRefID that is a ClOrdID) means to the OMS: an ExecutionReport
    Rejected for a NewOrderSingle, an OrderCancelReject for a cancel or replace. None if
    the message was no order of ours (an OrderStatusRequest: the reconcile retries)."""
    f = np.zeros(C.N_FIELDS, np.int64)
    f[C.F_SYMBOL_ID] = -1
    f[C.F_TEXT_AT] = -1
    if ours is not None:
        d = first_of(pairs(ours))
        kind, cl, orig = d.get(35), whole(d.get(11)), whole(d.get(41))
    else:
        kind, cl, orig = b"D", by_id, None
    if cl is None:
        return None
    f[C.F_CL_ORD_ID] = cl
    if kind == b"D":
        f[C.F_MSG_TYPE] = C.MSG_EXEC_REPORT
        f[C.F_EXEC_TYPE] = f[C.F_ORD_STATUS] = FIX_REJECTED
        f[C.F_ORD_REJ_REASON] = reason
    elif kind in (b"F", b"G") and orig is not None:
        f[C.F_MSG_TYPE] = C.MSG_CANCEL_REJECT
        f[C.F_ORIG_CL_ORD_ID] = orig
        f[C.F_CXL_REJ_REASON] = reason
        f[C.F_CXL_REJ_RESPONSE_TO] = CXL_RESPONSE_CANCEL if kind == b"F" else \
            CXL_RESPONSE_REPLACE
    else:
        return None
    return f
