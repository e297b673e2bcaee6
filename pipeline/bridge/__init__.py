"""``hft bridge``: a ring forwarded over Aeron into a ring of the same layout elsewhere.

- ``aeron``: the C client in pyaeron's extension, bound with ctypes (set-up only);
- ``calls``: offer and poll from jitted code, and the poll's C fragment handler;
- ``rings``: which rings are bridged, observing (md, book) or gating (orders, execs);
- ``sender`` / ``receiver``: the two agents, run by the AgentRunner like every stage;
- ``driver``: the Aeron media driver process, idle-friendly for small hosts.
"""
