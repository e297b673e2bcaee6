"""Transport probe: a paced producer and latency-measuring consumers on one ring.

This is what ``./run.sh`` shows until the full pipeline runs, and what a user runs to see
hop latency on their host.
"""
