"""A shadow TLS session: keeps the encrypt path warm without touching the real session.

The gateway sends ~10 orders a second, so ``SSL_write`` on the venue session runs cold
each time (BENCHMARKS.md "Why a quiet path is slow here": a path idle for a few ms runs
2-5x slower here). Writing anything extra on the real session is not an option (its
records are the venue's, and so are its sequence numbers), so the gateway's warm pass
encrypts on a second TLS session of its own instead: a client ``SSL`` on one end of the
warm link (``orders.warm.WarmLink``, a loopback TCP connection to ourselves) and, for
the handshake only, a server ``SSL`` on the other end, in the same process.

Why over the warm link's sockets and not over memory BIOs: the warm pass already sends
on that link to keep the syscall and TCP path warm; writing there through a socket BIO
runs the very code the real ``tls_write`` runs (record layer, AEAD, the socket BIO's
``write()``) and costs the warm pass only the encryption. The other end drains the
ciphertext raw (``sock_recv``); nothing decrypts it, so the server ``SSL`` is freed right
after the handshake.

``follow(real_ssl)`` matches the real session: the same TLS version and cipher (a TLS 1.3
venue picking AES-128-GCM gets an AES-128-GCM shadow; a TLS 1.2 ``ECDHE-RSA-`` suite gets
its ``ECDHE-ECDSA-`` twin, same record protection, as the shadow's certificate is EC), a
new shadow handshake only when those change, none for plain TCP (0: the warm pass sends
plain bytes, as before). A suite the shadow cannot serve (a TLS 1.2 RSA key exchange)
leaves the warm pass without TLS, with one warning. The
server certificate comes from ``certs.TestCA`` (what the simulator uses), made once, at
construction; its key files are deleted as soon as the context has loaded them. The
shadow client does not verify (it talks to itself) and sends no SNI; the server issues
no session tickets, so nothing is ever left unread on the client's side of the link.
"""

from __future__ import annotations

import logging
import socket
import time

from pipeline.tls import openssl as O
from pipeline.tls.certs import TestCA
from pipeline.tls.client import TlsContext, TlsError, server_context

log = logging.getLogger(__name__)

HANDSHAKE_S = 2.0  # both ends are in this process: a handshake takes a few ms


class ShadowTls:
    """The warm pass's TLS session over the connected pair ``tx`` -> ``rx`` (non-blocking
    sockets owned by the caller). ``ssl`` is the client ``SSL*`` (0: none)."""

    def __init__(self, tx: socket.socket, rx: socket.socket):
        self.tx, self.rx = tx, rx
        self.lib = O.lib()
        ca = TestCA(name="hft shadow TLS")
        try:
            cert = ca.issue(("localhost",), stem="shadow")
            self.server_ctx = server_context(str(cert.cert_file), str(cert.key_file))
        finally:
            ca.cleanup()  # the key lives on in the context only
        self.lib.SSL_CTX_set_num_tickets(self.server_ctx.ctx, 0)
        self.client_ctx = TlsContext(server=False, verify=False)
        self.ssl = 0
        self.key: tuple[int, str] | None = None  # (version, cipher) the shadow has
        self.handshakes = 0
        self.failures_seen = 0  # the warm pass's failed shadow writes already handled
        self.refused: tuple[int, str] | None = None  # a shadow that could not be made

    def follow(self, real_ssl: int) -> int:
        """The shadow ``SSL*`` for a real session ``real_ssl`` (0: plain TCP, returns 0);
        a new shadow handshake when the real session's version or cipher differ from the
        current shadow's. Raises ``TlsError`` if the shadow cannot be made alike (then 0
        for that version and cipher until ``reset``)."""
        if not real_ssl:
            return 0
        fns = self.lib
        version = fns.SSL_version(real_ssl)
        cipher = O.cipher_name(real_ssl)
        if self.key != (version, cipher):
            if self.refused == (version, cipher):
                return 0  # failed once for this session: not retried every housekeeping
            self._stop()
            try:
                self.ssl = self._handshake(version, cipher)
            except TlsError:
                self.refused = (version, cipher)
                raise
            self.key = (version, cipher)
            self.handshakes += 1
            log.info("shadow TLS for the warm pass: %s %s", self.version, self.cipher)
        return self.ssl

    @property
    def version(self) -> str:
        return self.lib.SSL_get_version(self.ssl).decode() if self.ssl else ""

    @property
    def cipher(self) -> str:
        return O.cipher_name(self.ssl) if self.ssl else ""

    def _handshake(self, version: int, cipher: str) -> int:
        fns = self.lib
        _drain(self.tx)
        _drain(self.rx)
        client = fns.SSL_new(self.client_ctx.ctx)
        server = fns.SSL_new(self.server_ctx.ctx)
        try:
            if not client or not server:
                raise TlsError(f"shadow TLS: SSL_new failed: {O.error_queue()}")
            for ssl_p in (client, server):
                for cmd in (O.SSL_CTRL_SET_MIN_PROTO_VERSION, O.SSL_CTRL_SET_MAX_PROTO_VERSION):
                    if fns.SSL_ctrl(ssl_p, cmd, version, None) != 1:
                        raise TlsError(f"shadow TLS: version {version:#x}: {O.error_queue()}")
            tls13 = version >= O.TLS1_3_VERSION
            pick = fns.SSL_set_ciphersuites if tls13 else fns.SSL_set_cipher_list
            want = cipher if tls13 else alike_suite(cipher)
            if pick(client, want.encode()) != 1:
                raise TlsError(f"shadow TLS: cipher {want}: {O.error_queue()}")
            if fns.SSL_set_fd(client, self.tx.fileno()) != 1 or \
                    fns.SSL_set_fd(server, self.rx.fileno()) != 1:
                raise TlsError(f"shadow TLS: SSL_set_fd failed: {O.error_queue()}")
            fns.SSL_set_connect_state(client)
            fns.SSL_set_accept_state(server)
            _pump(fns, client, server)
            got = (fns.SSL_version(client), O.cipher_name(client))
            if got != (version, want):
                raise TlsError(f"shadow TLS: got {got}, wanted {(version, want)}")
        except BaseException:
            if client:
                fns.SSL_free(client)
            raise
        finally:
            if server:
                fns.SSL_free(server)  # nothing decrypts the shadow's records
            fns.ERR_clear_error()  # the hot path's SSL_get_error needs an empty queue
        _drain(self.rx)
        return client

    def reset(self) -> None:
        """Drop the shadow session (the next ``follow`` makes a new one)."""
        self._stop()
        self.refused = None

    def _stop(self) -> None:
        if self.ssl:
            self.lib.SSL_free(self.ssl)  # no close_notify: nobody reads it
            self.ssl = 0
            self.key = None

    def close(self) -> None:
        self._stop()
        self.server_ctx.close()
        self.client_ctx.close()


def alike_suite(cipher: str) -> str:
    """The TLS 1.2 suite our EC certificate can serve with the same record protection as
    ``cipher`` (OpenSSL name): ``ECDHE-RSA-X`` -> ``ECDHE-ECDSA-X`` (the authentication
    differs, the bulk cipher and MAC, all the records see, do not); others as they are."""
    if cipher.startswith("ECDHE-RSA-"):
        return "ECDHE-ECDSA-" + cipher[len("ECDHE-RSA-"):]
    return cipher


def _pump(fns, client: int, server: int) -> None:
    """Step both handshakes in turn (non-blocking sockets, same process) until both end."""
    deadline = time.monotonic() + HANDSHAKE_S
    done = [False, False]
    while not all(done):
        for i, ssl_p in enumerate((client, server)):
            if done[i]:
                continue
            fns.ERR_clear_error()
            r = fns.SSL_do_handshake(ssl_p)
            if r == 1:
                done[i] = True
                continue
            err = fns.SSL_get_error(ssl_p, r)
            if err not in (O.SSL_ERROR_WANT_READ, O.SSL_ERROR_WANT_WRITE):
                raise TlsError(f"shadow TLS handshake failed ({'client' if i == 0 else 'server'}"
                               f", error {err}): {O.error_queue()}")
        if time.monotonic() > deadline:
            raise TlsError(f"shadow TLS: no handshake within {HANDSHAKE_S:g}s")


def _drain(sock: socket.socket) -> None:
    """Whatever waits in ``sock``'s receive queue, discarded."""
    while True:
        try:
            if not sock.recv(65536):
                return
        except BlockingIOError:
            return
