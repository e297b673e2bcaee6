"""Market data: Binance wire parsing, order-book sync, books, capture and replay.

Hot path (numba): ``parser`` (JSON bytes -> parsed message arrays), ``decimal`` (exact
decimal -> ticks/lots), ``normalize`` + ``sync`` (Binance's local-book procedure, emitting
MD_EVENT records), ``book`` (L2 book in arrays). Cold path: ``replay``, ``capture``,
``feed`` (the I/O shell), ``builder`` (book builder agent), ``latest`` (seqlock area).
"""
