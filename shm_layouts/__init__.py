"""Every binary layout that crosses a process boundary, declared once.

A segment header carries ``MAGIC``, ``LAYOUT_VERSION`` and a hash of the dtypes it holds;
attaching with a different layout fails with a message naming both sides. Bump
``LAYOUT_VERSION`` when a header's meaning changes without its dtype changing.
"""

from shm_layouts.hashing import layout_hash
from shm_layouts.headers import LAYOUT_VERSION, MAGIC, SEGMENT_HEADER, SegmentKind, SegmentState

__all__ = [
    "LAYOUT_VERSION",
    "MAGIC",
    "SEGMENT_HEADER",
    "SegmentKind",
    "SegmentState",
    "layout_hash",
]
