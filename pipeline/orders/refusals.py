"""A request the venue refused with a session-level Reject (35=3): Binance answers a
malformed or over-limit order-entry message that way, naming it only by RefSeqNum (45),
and sends nothing else about it. The request's own bytes come back from the FIX store's
journal, and become the report the OMS would have had (a REJECTED ExecutionReport for a
new order or an XCN, a cancel or amend reject, a refused mass cancel), so the order is
never left pending.
"""

from __future__ import annotations

import numpy as np
import simplefix

from pipeline.fix import codec as C
from pipeline.orders import oms

MASS_CANCEL_REJECTED = oms.MASS_CANCEL_REJECTED


def report_for(raw: bytes, code: int) -> np.ndarray | None:
    """The field vector standing for the venue's refusal of request ``raw`` (our own
    outbound message) with ErrorCode ``code``; None for anything not about an order."""
    p = simplefix.FixParser()
    p.append_buffer(raw)
    m = p.get_message()
    if m is None or m.get(11) is None:
        return None
    msg_type = m.get(35).decode()
    f = np.zeros(C.N_FIELDS, np.int64)
    f[C.F_TEXT_AT] = -1
    f[C.F_SYMBOL_ID] = -1
    f[C.F_ERROR_CODE] = code
    f[C.F_CL_ORD_ID] = int(m.get(11))
    f[C.F_ORIG_CL_ORD_ID] = int(m.get(41) or 0)
    if msg_type in ("D", "XCN"):  # the new order never reached the book
        f[C.F_MSG_TYPE] = C.MSG_EXEC_REPORT
        f[C.F_EXEC_TYPE] = f[C.F_ORD_STATUS] = oms.FIX_REJECTED
        f[C.F_ORIG_CL_ORD_ID] = 0  # the report is about the new order
    elif msg_type == "F":
        f[C.F_MSG_TYPE] = C.MSG_CANCEL_REJECT
    elif msg_type == "XAK":
        f[C.F_MSG_TYPE] = C.MSG_AMEND_REJECT
    elif msg_type == "q":
        f[C.F_MSG_TYPE] = C.MSG_MASS_CANCEL_REPORT
        f[C.F_MASS_RESPONSE] = MASS_CANCEL_REJECTED
    else:
        return None
    return f
