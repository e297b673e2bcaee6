"""Replay: captures pushed through the same code as live.

- ``inline``: market data only, in one process: parse -> sync -> books (``hft replay``);
- ``procs``: the same through the real book_builder process and rings;
- ``pipeline``: the whole pipeline lock-step against a paper venue (``hft run --replay``);
- ``paper``: that paper venue, which fills resting orders when the replayed book trades
  through them.
"""
