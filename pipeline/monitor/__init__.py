"""The read-only monitor (``hft monitor``): ``top`` (the live view), ``sections`` (one
plugin per segment kind), ``ringview`` (ring words without joining), ``discover`` (finding
an instance from its name), ``prometheus`` (text exposition). It maps segments read-only
and never writes to a pipeline segment."""
