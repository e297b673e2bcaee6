"""Binance Spot specifics that are not a wire protocol of their own: Ed25519 keys and
signatures (FIX Logon, signed REST), and what the exchange publishes about itself."""
