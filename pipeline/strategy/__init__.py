"""Strategies: jitted code called on book updates, trades, execution reports and timers,
emitting order intents into the order ring (see ``api.py``)."""
