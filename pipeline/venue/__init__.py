"""The venue simulator: the exchange the pipeline trades against when no real one is reachable.

- ``matching.Book``: price-time priority order book in int ticks/lots (deterministic).
- ``flow.Flow``: seeded background participants (adds/cancels near the touch, market
  orders, bursts) around a random-walk fair price.
- ``mdserver``: Binance-format WebSocket streams and REST depth snapshots.
- ``fixacceptor``: FIX 4.4 order entry (session layer + D/F/G/H -> 8/9), ``fixstore``
  persists each session's sequence numbers and sent messages.
- ``faults.Faults``: run-time switchable fault injection.
- ``simulator.Simulator``: all of it on one asyncio loop (``hft sim`` runs it;
  ``process.spawn`` starts that as a subprocess; ``testing`` has in-process helpers and
  reference clients).
"""
