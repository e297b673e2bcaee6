"""Market data: Binance wire parsing, order-book sync, books, capture and replay.

Hot path (numba, no Python object per message):
- ``parser``: JSON bytes -> parsed-message arrays (exact decimal -> ticks/lots through
  ``pipeline.units``); ``sbe``: Binance SBE frames -> the same MD_EVENT records;
- ``normalize``: one message -> MD_EVENT records (symbol lookup, grid, sync rules);
- ``sync``: Binance's local-book procedure per symbol (Sans-I/O);
- ``book``: L2 books in arrays; ``apply``: MD_EVENT -> books -> BOOK_UPDATE;
- ``latest``: the seqlock latest-book area; ``publish``: resumable ring publishing.

Processes and I/O: ``feed`` (feed handler agent) with ``wire`` (WebSocket/REST shell),
``builder`` (book builder agent), ``segments`` (ring/area names for the launcher).
Cold path: ``files`` (capture formats), ``infer`` (tick/lot from data), ``capture``.
Replay lives above this package, in ``pipeline.replay``.
"""
