"""The venue simulator: the exchange the pipeline trades against when no real one is reachable.

- ``matching.Book``: price-time priority order book in int ticks/lots (deterministic).
- ``flow.Flow``: seeded background participants (adds/cancels near the touch, market
  orders, bursts) around a random-walk fair price.
- ``mdserver``: Binance-format WebSocket streams and REST depth snapshots.
- ``session``: the FIX 4.4 acceptor session layer, Sans-I/O (bytes in, bytes out); its
  sequence numbers and journal are the initiator's ``pipeline.fix.store.SessionStore``.
- ``fixacceptor``: FIX order entry (accounts, live sessions, D/F/G/H/q -> 8/9/r) around
  the sessions; ``fixserver`` is its asyncio edge (sockets only).
- ``faults.Faults``: run-time switchable fault injection (market data and FIX).
- ``simulator.Simulator``: all of it on one asyncio loop (``hft sim`` runs it;
  ``process.spawn`` starts that as a subprocess; ``testing`` has in-process helpers and
  reference clients).
"""
