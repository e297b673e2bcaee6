"""TLS terminated in the process that owns the socket (issue 13).

- ``openssl``: the process's libssl/libcrypto (the ones Python's ``ssl`` loaded) via ctypes.
- ``client``: cold path: contexts, SNI, certificate and hostname verification, a bounded
  non-blocking handshake, clean close; errors that name their cause.
- ``io``: hot path: ``tls_read``/``tls_write`` callable from jitted code, no Python per call.
- ``certs``: a throwaway CA and server certificates (simulator, tests, benchmark).
"""
