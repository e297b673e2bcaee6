"""The order path: pre-trade risk, OMS, and the gateway that joins them to FIX.

Public API for other areas:
- ``segments.create_order_path(instance)`` / ``attach_order_path``: the "orders" ring
  (stream "order_intent", gating consumer "gateway"), the "execs" ring (stream
  "exec_report", gating consumer "strategy") and the "oms" state segment (``OmsState``).
- ``OmsState.next_cl_ord_id()`` (or fetch-add on ``words[W_NEXT_CL_ORD_ID]`` from jitted
  code): every intent carries a fresh client order id from here; cancels/replaces name
  the order in ``orig_cl_ord_id``.
- ``OmsState.set_kill(on)`` / ``killswitch.set_kill(instance, on)``: the kill switch.
- Exec reports: ``EXEC_REPORT`` records; ``source`` VENUE (1) or RISK (2, with
  ``reject_reason`` a ``shm_layouts.oms.RiskReason``).
- ``risk.book_top(marks, sid)``: the one place risk reads best bid/ask and book time; the
  gateway fills ``marks`` from a BOOK_UPDATE ring (config ``[gateway] book_ring``).
- ``views``: the named views the jitted order path takes (``OmsView``, ``Out``, ``Fix``,
  ``Execs``, ``Book``, ``Hists``) and ``GATEWAY_IO``, the gateway's counters record
  (``views.denials_by_reason`` names its per-reason denial counts).
"""
