"""The feed handler's I/O shell: WebSocket (handshake by ``websockets``' Sans-I/O client,
then frames decoded in numba from a non-blocking socket read by ``recv`` in numba) and
REST depth snapshots over HTTP."""
