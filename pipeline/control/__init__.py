"""Operator control: the control area (flags + acknowledged commands), the poller that
processes use to obey it, and the audit log of every command (``hft ctl``)."""
