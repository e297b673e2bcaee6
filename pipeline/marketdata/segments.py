"""The market-data segments of an instance, named so the launcher can wire them:

- ring ``md`` (stream ``md_event``), producer feed_handler, gating consumer book_builder;
- ring ``book`` (stream ``book_update``), producer book_builder, gating consumer strategy;
- ``latest_book``: the seqlock latest-book area (``pipeline.marketdata.latest``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.instruments import SymbolTable
from pipeline.marketdata.latest import LatestBooks
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from shm_layouts.records import BOOK_UPDATE, MD_EVENT

MD_RING, MD_STREAM, MD_CONSUMER = "md", "md_event", "book_builder"
BOOK_RING, BOOK_STREAM, BOOK_CONSUMER = "book", "book_update", "strategy"


@dataclass
class MdSegments:
    md: Ring
    book: Ring
    latest: LatestBooks

    def close(self) -> None:
        self.md.close()
        self.book.close()
        self.latest.close()


def create_md_segments(instance: Instance, capacity: int, n_symbols: int | SymbolTable,
                       book_capacity: int | None = None,
                       book_consumers: tuple[str, ...] = (BOOK_CONSUMER,)) -> MdSegments:
    """Create the md ring, book ring and latest-book area (pass a SymbolTable to record
    the instruments in the latest area, which the book builder reads its rules from)."""
    md = Ring.create(instance, MD_RING, MD_STREAM, MD_EVENT, capacity, gating=(MD_CONSUMER,))
    book = Ring.create(instance, BOOK_RING, BOOK_STREAM, BOOK_UPDATE,
                       book_capacity or capacity, gating=book_consumers)
    return MdSegments(md, book, LatestBooks.create(instance, n_symbols))


def attach_md_segments(instance: Instance) -> MdSegments:
    return MdSegments(Ring.attach(instance, MD_RING, MD_STREAM, MD_EVENT),
                      Ring.attach(instance, BOOK_RING, BOOK_STREAM, BOOK_UPDATE),
                      LatestBooks.attach(instance))
