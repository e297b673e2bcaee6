"""Metrics every agent writes, after Aeron's counters file: named counters and log-linear
latency histograms in a shared-memory segment (``counters``, ``histogram``), updated from
jitted code with relaxed atomics and read by anyone through a read-only mapping."""
