"""Cold path of a TLS connection: context, SNI, verification, handshake, close.

A ``TlsContext`` is made once per venue (``client_context``); ``connect`` runs the
handshake over an already-connected TCP socket, non-blocking, driven by ``select`` and
bounded by ``timeout``, and returns a ``TlsConnection`` whose ``ssl`` (an int, the
``SSL*``) the jitted loop passes to ``tls_read``/``tls_write``. Verification is on unless
the caller says ``verify=False``, which logs a warning on every connect. A failure raises
a ``TlsError`` subclass whose message names the cause (unknown CA, hostname mismatch,
expired certificate, handshake timeout, peer closed) and the socket is closed: no
half-trusted connection is ever returned. ``begin_connect`` gives the same handshake as
a ``TlsHandshake`` to step from a duty cycle without blocking.

Context settings, and why:
- TLS >= 1.2; renegotiation refused (a TLS 1.2 server could otherwise start a handshake
  in the middle of the hot path).
- ``SSL_MODE_AUTO_RETRY`` (OpenSSL 3's default, set explicitly): when a record carries a
  post-handshake message (TLS 1.3 NewSessionTicket, KeyUpdate), ``SSL_read`` processes it
  and goes on to the next record in the same call, so app data queued behind it is not
  delayed to the next poll; on a non-blocking socket it still returns WANT_READ when the
  socket is empty, it never blocks.
- ``SSL_MODE_ENABLE_PARTIAL_WRITE``: ``SSL_write`` returns the bytes of the records that
  went out, like ``send()``, so the callers' existing partial-send paths keep working.
- ``SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER``: after WANT_WRITE the write must be retried
  with the same leading bytes (OpenSSL holds the encrypted record), but callers keep the
  unsent rest in a new buffer (the FIX initiator's ``pending``); this lets the retry come
  from a different address. The retry must be at least as long as the failed write.
- read-ahead: one ``read()`` takes every record the kernel holds instead of a 5-byte
  header then the body (two syscalls per record); bench/tls.py measures it, and the
  memory-BIO alternative (``TlsConnection.memory_bio``).
The socket BIO writes with ``write()``, not ``send(MSG_NOSIGNAL)``: a dead peer is EPIPE
only because Python processes ignore SIGPIPE (CPython does at start-up).
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import select
import socket
import time
from dataclasses import dataclass
from functools import partial

from pipeline.config import TLS_KEYS, ConfigError
from pipeline.tls import openssl as O
from pipeline.tls.openssl import describe

log = logging.getLogger(__name__)

UNKNOWN_CA = "unknown CA"
HOSTNAME_MISMATCH = "hostname mismatch"
EXPIRED = "expired certificate"
NOT_YET_VALID = "certificate not yet valid"
REVOKED = "revoked certificate"
REJECTED = "certificate rejected"
CAUSES = {
    O.X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: UNKNOWN_CA,
    O.X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNKNOWN_CA,
    O.X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNKNOWN_CA,
    O.X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: UNKNOWN_CA,
    O.X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: UNKNOWN_CA,
    O.X509_V_ERR_CERT_HAS_EXPIRED: EXPIRED,
    O.X509_V_ERR_CERT_NOT_YET_VALID: NOT_YET_VALID,
    O.X509_V_ERR_CERT_REVOKED: REVOKED,
    O.X509_V_ERR_HOSTNAME_MISMATCH: HOSTNAME_MISMATCH,
    O.X509_V_ERR_IP_ADDRESS_MISMATCH: HOSTNAME_MISMATCH,
}


class TlsError(ConnectionError):
    """A TLS handshake or record-layer failure; the message says what and with whom."""


class TlsVerifyError(TlsError):
    """The peer's certificate was not accepted; ``cause`` is one of the names above,
    ``code`` the X509_V_ERR_* number."""

    def __init__(self, message: str, cause: str, code: int):
        super().__init__(message)
        self.cause = cause
        self.code = code


class TlsHandshakeTimeout(TlsError, TimeoutError):
    pass


class TlsPeerClosed(TlsError):
    pass


@dataclass(frozen=True)
class TlsSettings:
    """The TLS part of a venue's config section (``server_name``, ``ca_file``,
    ``tls_verify``, ``handshake_timeout_s``)."""

    server_name: str
    ca_file: str | None = None  # None: the system CA store
    verify: bool = True
    handshake_timeout: float = 5.0

    @classmethod
    def from_config(cls, section: dict, host: str, where: str = "config") -> TlsSettings:
        """``host`` (the URL's or the FIX endpoint's) is the name unless ``server_name``
        says otherwise; empty strings mean "not set". Defaults: ``config.TLS_KEYS``.
        Raises ``ConfigError`` naming ``where`` for a value that cannot work."""
        s = TLS_KEYS | {k: v for k, v in section.items() if k in TLS_KEYS}
        if not isinstance(s["tls_verify"], bool):
            raise ConfigError(f"{where}: tls_verify must be true or false, not "
                              f"{s['tls_verify']!r}")
        timeout = s["handshake_timeout_s"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"{where}: handshake_timeout_s must be > 0, not {timeout!r}")
        for key in ("server_name", "ca_file"):
            if not isinstance(s[key], str):
                raise ConfigError(f"{where}: {key} must be a string, not {s[key]!r}")
        ca = s["ca_file"] or None
        if ca is not None and not os.path.isfile(ca):
            raise ConfigError(f"{where}: ca_file {ca} does not exist")
        return cls(server_name=s["server_name"] or host, ca_file=ca, verify=s["tls_verify"],
                   handshake_timeout=float(timeout))


def _checked(ok: int, what: str) -> None:
    if ok != 1:
        raise TlsError(f"{what} failed: {O.error_queue() or 'no OpenSSL error'}")


class TlsContext:
    """An ``SSL_CTX``: protocol floor, modes and trust; shared by a venue's connections
    (each ``SSL`` holds its own reference, so freeing the context early is safe)."""

    def __init__(self, server: bool, verify: bool = True, read_ahead: bool = True):
        self.lib = O.lib()
        fns = self.lib
        method = fns.TLS_server_method() if server else fns.TLS_client_method()
        self.ctx = fns.SSL_CTX_new(method)
        if not self.ctx:
            raise TlsError(f"SSL_CTX_new failed: {O.error_queue()}")
        self.server = server
        self.verify = verify
        if fns.SSL_CTX_ctrl(self.ctx, O.SSL_CTRL_SET_MIN_PROTO_VERSION, O.TLS1_2_VERSION,
                            None) != 1:
            raise TlsError(f"cannot require TLS >= 1.2: {O.error_queue()}")
        fns.SSL_CTX_set_options(self.ctx, O.SSL_OP_NO_RENEGOTIATION)
        modes = (O.SSL_MODE_AUTO_RETRY | O.SSL_MODE_ENABLE_PARTIAL_WRITE
                 | O.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
        fns.SSL_CTX_ctrl(self.ctx, O.SSL_CTRL_MODE, modes, None)
        fns.SSL_CTX_ctrl(self.ctx, O.SSL_CTRL_SET_READ_AHEAD, int(read_ahead), None)
        fns.SSL_CTX_set_verify(self.ctx, O.SSL_VERIFY_PEER if verify and not server
                               else O.SSL_VERIFY_NONE, None)

    def close(self) -> None:
        if self.ctx:
            self.lib.SSL_CTX_free(self.ctx)
            self.ctx = None

    def __enter__(self) -> TlsContext:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self, sock: socket.socket, server_name: str,
                timeout: float = 5.0) -> TlsConnection:
        """Client handshake over ``sock`` (connected TCP; left non-blocking), waiting in
        ``select`` up to ``timeout``. ``server_name`` is sent as SNI and checked against the
        certificate (an IP literal: no SNI, the certificate's IP SAN is checked)."""
        return self.begin_connect(sock, server_name, timeout).wait()

    def begin_connect(self, sock: socket.socket, server_name: str,
                      timeout: float = 5.0) -> TlsHandshake:
        """The same handshake, stepped by the caller (``TlsHandshake.step``) so a duty
        cycle never blocks in it (the FIX initiator's connect state)."""
        peer = _peer(sock)
        if not self.verify:
            log.warning("TLS to %s (%s): certificate verification is OFF (verify=false); "
                        "the peer is not authenticated", peer, server_name)
        fns = self.lib
        ssl_p = self._new_ssl(sock, peer)
        try:
            name = server_name.encode()
            if _is_ip(server_name):
                if self.verify:
                    _checked(fns.X509_VERIFY_PARAM_set1_ip_asc(fns.SSL_get0_param(ssl_p), name),
                             "X509_VERIFY_PARAM_set1_ip_asc")
            else:
                _checked(fns.SSL_ctrl(ssl_p, O.SSL_CTRL_SET_TLSEXT_HOSTNAME,
                                      O.TLSEXT_NAMETYPE_HOST_NAME, name), "SNI")
                if self.verify:
                    _checked(fns.SSL_set1_host(ssl_p, name), "SSL_set1_host")
        except BaseException:
            fns.SSL_free(ssl_p)
            sock.close()
            raise
        fns.SSL_set_connect_state(ssl_p)
        return TlsHandshake(self, ssl_p, sock, server_name, timeout)

    def accept(self, sock: socket.socket, timeout: float = 5.0) -> TlsConnection:
        """Server handshake over an accepted ``sock`` (tests, benchmark, simulator)."""
        ssl_p = self._new_ssl(sock, _peer(sock))
        self.lib.SSL_set_accept_state(ssl_p)
        return TlsHandshake(self, ssl_p, sock, "", timeout).wait()

    def _new_ssl(self, sock: socket.socket, peer: str) -> int:
        sock.setblocking(False)
        ssl_p = self.lib.SSL_new(self.ctx)
        if not ssl_p:
            sock.close()
            raise TlsError(f"TLS to {peer}: SSL_new failed: {O.error_queue()}")
        if self.lib.SSL_set_fd(ssl_p, sock.fileno()) != 1:
            self.lib.SSL_free(ssl_p)
            sock.close()
            raise TlsError(f"TLS to {peer}: SSL_set_fd failed: {O.error_queue()}")
        return ssl_p


class TlsHandshake:
    """A handshake in progress. ``step()`` never blocks: the connection when done, None
    while it waits for the peer (``wants_read`` says which way), a ``TlsError`` naming the
    cause when it fails or the deadline passed; on failure the ``SSL`` is freed and the
    socket closed, so nothing half-trusted survives."""

    def __init__(self, ctx: TlsContext, ssl_p: int, sock: socket.socket, server_name: str,
                 timeout: float):
        self.ctx = ctx
        self.ssl = ssl_p
        self.sock = sock
        self.server_name = server_name
        self.who = f"{_peer(sock)} ({server_name})" if server_name else _peer(sock)
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.wants_read = True

    def step(self) -> TlsConnection | None:
        fns = self.ctx.lib
        try:
            fns.ERR_clear_error()  # SSL_get_error reads this thread's queue: start it empty
            r = fns.SSL_do_handshake(self.ssl)
            if r == 1:
                return self._done()
            err = fns.SSL_get_error(self.ssl, r)
            if err not in (O.SSL_ERROR_WANT_READ, O.SSL_ERROR_WANT_WRITE):
                raise self._failure(err)
            if time.monotonic() >= self.deadline:
                raise TlsHandshakeTimeout(f"TLS to {self.who}: handshake timeout: no "
                                          f"handshake within {self.timeout:g}s")
            self.wants_read = err == O.SSL_ERROR_WANT_READ
            return None
        except BaseException:
            self.abort()
            raise

    def wait(self) -> TlsConnection:
        """Step until done, waiting in ``select`` for the socket (cold path)."""
        while (conn := self.step()) is None:
            left = max(self.deadline - time.monotonic(), 0.0)
            rd = [self.sock] if self.wants_read else []
            select.select(rd, [] if rd else [self.sock], [], left)
        return conn

    def abort(self) -> None:
        if self.ssl:
            self.ctx.lib.SSL_free(self.ssl)
            self.ssl = 0
        self.sock.close()

    def _done(self) -> TlsConnection:
        ctx, fns = self.ctx, self.ctx.lib
        if ctx.verify and not ctx.server:
            code = fns.SSL_get_verify_result(self.ssl)
            if code != O.X509_V_OK:  # cannot happen with SSL_VERIFY_PEER; never trust it
                raise _verify_error(self.who, code)
        fns.ERR_clear_error()  # the hot path's SSL_get_error needs an empty queue
        conn = TlsConnection(self.ssl, self.sock, self.server_name)
        self.ssl = 0
        if not ctx.server:
            log.info("TLS to %s: %s %s%s", self.who, conn.version, conn.cipher,
                     "" if ctx.verify else ", NOT verified")
        return conn

    def _failure(self, err: int) -> TlsError:
        ctx, fns = self.ctx, self.ctx.lib
        code = fns.SSL_get_verify_result(self.ssl)
        if ctx.verify and not ctx.server and code != O.X509_V_OK:
            O.error_queue()
            return _verify_error(self.who, code)
        last = fns.ERR_peek_last_error()
        if err in (O.SSL_ERROR_SYSCALL, O.SSL_ERROR_ZERO_RETURN) or O.is_unexpected_eof(last):
            detail = O.error_queue() or "connection closed"
            return TlsPeerClosed(f"TLS to {self.who}: peer closed the connection during the "
                                 f"handshake ({detail})")
        return TlsError(f"TLS to {self.who}: handshake failed: "
                        f"{O.error_queue() or f'error {err}'}")


def _verify_error(who: str, code: int) -> TlsVerifyError:
    cause = CAUSES.get(code, REJECTED)
    text = O.lib().X509_verify_cert_error_string(code).decode(errors="replace")
    return TlsVerifyError(f"TLS to {who}: certificate verification failed: {cause} ({text}, "
                          f"X509 error {code})", cause, code)


def _c_buffer(buf):
    """Something ctypes passes as ``void *`` to ``buf``'s bytes; keep it alive across the
    call (bytes as is, a read-only view copied, a writable one shared, no copy)."""
    if isinstance(buf, bytes):
        return buf
    view = memoryview(buf)
    if view.readonly:
        return view.tobytes()
    return (ctypes.c_char * view.nbytes).from_buffer(view)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _peer(sock: socket.socket) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return "?"
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else (name or "unix socket")


def client_context(ca_file: str | None = None, verify: bool = True,
                   read_ahead: bool = True) -> TlsContext:
    """A client context trusting ``ca_file`` (PEM, one or more CAs) or, when None, the
    system CA store."""
    ctx = TlsContext(server=False, verify=verify, read_ahead=read_ahead)
    fns = ctx.lib
    if ca_file is not None:
        ok = fns.SSL_CTX_load_verify_locations(ctx.ctx, str(ca_file).encode(), None)
        what = f"loading CA file {ca_file}"
    else:
        ok = fns.SSL_CTX_set_default_verify_paths(ctx.ctx)
        what = "loading the system CA store"
    if ok != 1:
        ctx.close()
        raise TlsError(f"{what} failed: {O.error_queue()}")
    return ctx


def server_context(cert_file: str, key_file: str, read_ahead: bool = True) -> TlsContext:
    """A server context presenting ``cert_file`` (PEM chain) with ``key_file``. Errors name
    the files, never their content."""
    ctx = TlsContext(server=True, read_ahead=read_ahead)
    fns = ctx.lib
    try:
        _checked(fns.SSL_CTX_use_certificate_chain_file(ctx.ctx, str(cert_file).encode()),
                 f"loading certificate {cert_file}")
        _checked(fns.SSL_CTX_use_PrivateKey_file(ctx.ctx, str(key_file).encode(),
                                                 O.SSL_FILETYPE_PEM), f"loading key {key_file}")
        _checked(fns.SSL_CTX_check_private_key(ctx.ctx), f"matching {key_file} to {cert_file}")
    except TlsError:
        ctx.close()
        raise
    return ctx


def open_connection(host: str, port: int, settings: TlsSettings,
                    ctx: TlsContext | None = None) -> TlsConnection:
    """TCP connect (bounded by the handshake timeout) then the TLS handshake."""
    own = ctx is None
    if ctx is None:
        ctx = client_context(settings.ca_file, settings.verify)
    try:
        sock = socket.create_connection((host, port), timeout=settings.handshake_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ctx.connect(sock, settings.server_name, settings.handshake_timeout)
    finally:
        if own:
            ctx.close()


class TlsConnection:
    """An established TLS connection. ``ssl`` (int) is what jitted code passes to
    ``tls_read``/``tls_write``; keep this object alive while it does. Not thread-safe:
    the hot loop and these cold-path calls must run on the same thread (they do: control
    frames and admin messages are answered between duty cycles)."""

    def __init__(self, ssl_p: int, sock: socket.socket, server_name: str):
        self.lib = O.lib()
        self._ssl = ssl_p
        self.sock = sock
        self.server_name = server_name
        self.version = self.lib.SSL_get_version(ssl_p).decode()
        self.cipher = O.cipher_name(ssl_p)

    @property
    def ssl(self) -> int:
        if not self._ssl:
            raise TlsError("TLS connection is closed")
        return self._ssl

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    def has_session_ticket(self) -> bool:
        """True once a NewSessionTicket was processed (TLS 1.3 sends it after the handshake;
        ``tls_read`` consumes it transparently)."""
        sess = self.lib.SSL_get_session(self.ssl)
        return bool(sess) and self.lib.SSL_SESSION_has_ticket(sess) == 1

    def memory_bio(self, read: bool = True) -> int:
        """Swap the read (or write) side from the socket to a memory BIO owned by the
        ``SSL``; returns the ``BIO*`` for ``bio_write``/``bio_read``. Reading then means:
        ``sock_recv`` the ciphertext, ``bio_write`` it, ``tls_read`` until WANT_READ (one
        syscall for many records; bench/tls.py compares it with read-ahead)."""
        bio = self.lib.BIO_new(self.lib.BIO_s_mem())
        if not bio:
            raise TlsError(f"BIO_new failed: {O.error_queue()}")
        (self.lib.SSL_set0_rbio if read else self.lib.SSL_set0_wbio)(self.ssl, bio)
        return bio

    def key_update(self, request_peer: bool = True) -> None:
        """Schedule a TLS 1.3 KeyUpdate (sent with the next write)."""
        _checked(self.lib.SSL_key_update(self.ssl, int(request_peer)), "SSL_key_update")

    def key_update_pending(self) -> bool:
        """True while a KeyUpdate of ours is due (e.g. the peer requested one): it goes out
        with the next write."""
        return self.lib.SSL_get_key_update_type(self.ssl) != O.SSL_KEY_UPDATE_NONE

    def send(self, data) -> int:
        """Non-blocking write like ``socket.send``: bytes taken (whole records), raises
        ``BlockingIOError`` when nothing could go (retry with the same leading bytes) and
        ``TlsError`` on a failed connection."""
        n = len(data)
        if not n:
            return 0
        self.lib.ERR_clear_error()
        src = _c_buffer(data)
        r = self.lib.SSL_write(self.ssl, src, n)
        return r if r > 0 else self._failed(r, "write")

    def recv_into(self, buf) -> int:
        """Non-blocking read like ``socket.recv_into``: bytes, 0 after close_notify,
        ``BlockingIOError`` when nothing is there, ``TlsError`` when the stream was cut
        or garbled (the FIX initiator's Python read path)."""
        n = len(buf)
        if not n:
            return 0
        self.lib.ERR_clear_error()
        dst = _c_buffer(buf)
        if isinstance(dst, bytes):
            raise TypeError("recv_into needs a writable buffer")
        r = self.lib.SSL_read(self.ssl, dst, n)
        return r if r > 0 else self._failed(r, "read")

    def _failed(self, r: int, what: str) -> int:
        err = self.lib.SSL_get_error(self.ssl, r)
        if err in (O.SSL_ERROR_WANT_READ, O.SSL_ERROR_WANT_WRITE):
            raise BlockingIOError(f"TLS {what}: {describe(-err)}")
        if err == O.SSL_ERROR_ZERO_RETURN and what == "read":
            return 0
        last = self.lib.ERR_peek_last_error()
        code = -O.SSL_ERROR_SYSCALL if O.is_unexpected_eof(last) else -err
        raise TlsError(f"TLS {what} {_peer(self.sock)}: {self.describe(code)}")

    def sendall(self, data: bytes, timeout: float = 5.0) -> None:
        """Cold-path blocking write (HTTP upgrade, WebSocket pong/close, FIX admin)."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            view = view[self._blocking(partial(self.send, view), False, deadline, "write"):]

    def recv(self, n: int, timeout: float = 5.0) -> bytes:
        """Cold-path read of up to ``n`` bytes (HTTP upgrade response); b'' on close_notify."""
        buf = bytearray(n)
        got = self._blocking(partial(self.recv_into, buf), True, time.monotonic() + timeout,
                             "read")
        return bytes(buf[:got])

    def _blocking(self, op, readable: bool, deadline: float, what: str) -> int:
        """``op()`` retried under ``select`` until it does not raise BlockingIOError."""
        while True:
            try:
                return op()
            except BlockingIOError:
                if not self._wait(readable, deadline):
                    raise TlsError(f"TLS {what} {_peer(self.sock)}: timed out") from None

    def _wait(self, readable: bool, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        select.select([self.sock] if readable else [], [] if readable else [self.sock], [],
                      left)
        return True

    def describe(self, code: int) -> str:
        """Words for a negative ``tls_read``/``tls_write`` result; drains the thread's
        OpenSSL error queue (call it before the next TLS call on this thread)."""
        return describe(code, O.error_queue())

    def close(self) -> None:
        """Send close_notify (once, without waiting for the peer's) and free everything."""
        if self._ssl:
            self.lib.ERR_clear_error()
            self.lib.SSL_shutdown(self._ssl)
            self.lib.ERR_clear_error()
            self.lib.SSL_free(self._ssl)
            self._ssl = 0
        self.sock.close()

    def __enter__(self) -> TlsConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
