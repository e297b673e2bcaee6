"""Risk denials in the run summary: the total, broken down by reason (non-zero only)."""

from __future__ import annotations

from pipeline.commands.run import format_denials
from pipeline.launch.summary import denials


def test_denials_break_down_by_non_zero_reason_largest_first():
    values = {"gateway.orders.denied": 67, "gateway.orders.denied.order_rate": 60,
              "gateway.orders.denied.not_ready": 7, "gateway.orders.denied.max_qty": 0,
              "gateway.orders.sent": 331, "strategy.intents": 398}
    d = denials(values)
    assert d == {"total": 67, "by_reason": {"order_rate": 60, "not_ready": 7}}
    assert list(d["by_reason"]) == ["order_rate", "not_ready"]
    assert format_denials(d, 398) == \
        "denied: 67 of 398 intents (16.8%): order_rate 60, not_ready 7"


def test_no_denials_and_no_intents_print_plainly():
    d = denials({"gateway.orders.denied": 0, "gateway.orders.denied.order_rate": 0})
    assert d == {"total": 0, "by_reason": {}}
    assert format_denials(d, 0) == "denied: 0 of 0 intents"


def test_requotes_the_strategy_held_back_are_shown_with_the_denials():
    d = denials({"gateway.orders.denied": 0})
    assert format_denials(d, 179, 545) == \
        "denied: 0 of 179 intents (0.0%); 545 requotes held back by the strategy's order budget"
