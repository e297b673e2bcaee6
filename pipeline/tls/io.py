"""TLS record I/O from jitted code: ``tls_read``/``tls_write`` over OpenSSL, no Python.

``SSL_read``, ``SSL_write``, ``SSL_get_error`` and ``ERR_peek_last_error`` are external
declarations resolved by symbol name (as ``pipeline.runtime.libc`` does for libc), so
``cache=True`` keeps working across processes; importing this module loads libssl for
LLVM first. The ``SSL*`` travels as an int64 (``TlsConnection.ssl``).

Results: bytes moved (> 0), 0 only when ``n <= 0`` (OpenSSL is not called), or one of
- ``TLS_WANT_READ``/``TLS_WANT_WRITE``: nothing now, call again on a later pass. Normal
  and frequent: an empty socket, a record only partly arrived, or a record that carried
  no app data (a TLS 1.3 NewSessionTicket or KeyUpdate, processed inside the call). A
  busy-polling loop treats both alike; a write after WANT_WRITE must repeat the same
  leading bytes (OpenSSL holds their encrypted record; see ``client``'s mode notes).
- ``TLS_CLOSED``: the peer sent close_notify; no more data will come.
- ``TLS_EOF``: the TCP stream ended or failed without close_notify (a cut mid-record, a
  reset); OpenSSL 3 reports this as an SSL error, it is mapped here so callers can tell
  "peer vanished" from "peer sent garbage".
- ``TLS_ERROR``: a protocol failure (garbage or forged record, bad MAC, fatal alert).
After CLOSED/EOF/ERROR the connection is finished: stop using it, get the details with
``TlsConnection.describe(r)`` (which drains this thread's OpenSSL error queue; the queue
must be empty before the next TLS call on the thread), close it, reconnect.

``wire_recv``/``wire_send`` give the same calls the ``sock_recv``/``sock_send`` conventions
over either wire (``ssl == 0``: plain TCP), for hot loops that already speak those.
"""

from __future__ import annotations

import ctypes
from errno import EAGAIN, ECONNRESET, EPIPE, EPROTO

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from pipeline.fix.sockio import sock_recv, sock_send
from pipeline.runtime.idle import WaitFd
from pipeline.runtime.libc import I8P, I32, I64, buffer_args, declare, is_buffer_call
from pipeline.tls import openssl as O

O.load_for_jit()

TLS_ERROR = O.TLS_ERROR
TLS_WANT_READ = O.TLS_WANT_READ
TLS_WANT_WRITE = O.TLS_WANT_WRITE
TLS_EOF = O.TLS_EOF
TLS_CLOSED = O.TLS_CLOSED
describe = O.describe
INT_MAX = 2**31 - 1

# per-connection counters, beside their user (they do not cross a process boundary)
TLS_STATS = np.dtype([("bytes_in", np.int64), ("bytes_out", np.int64),
                      ("close_notify", np.int64), ("eof", np.int64), ("errors", np.int64)])


def _const(v: int):
    return ir.Constant(I32, v)


def buffer_call(name: str, tls_result: bool = True):
    """An intrinsic ``f(ptr, arr, start, n)`` calling ``int name(void *ptr, void *buf, int n)``
    on ``arr[start:start+n]`` (uint8): ``SSL_read``/``SSL_write`` (``tls_result``: failures
    become TLS_* codes) or, raw, ``BIO_read``/``BIO_write`` (memory-BIO variants)."""

    def call(typingctx, ptr, arr, start, n):
        if not is_buffer_call(ptr, arr, start, n):
            return None

        def codegen(context, builder, sig, args):
            handle, buf, n_v = buffer_args(context, builder, sig, args)
            obj = builder.inttoptr(handle, I8P)
            result = cgutils.alloca_once_value(builder, ir.Constant(I64, 0))
            # the C calls take an int length; SSL_read/SSL_write return 0 for 0 bytes,
            # which SSL_get_error would misreport as EOF: never call them with n <= 0
            with builder.if_then(builder.icmp_signed(">", n_v, ir.Constant(I64, 0))):
                capped = builder.select(builder.icmp_signed(">", n_v, ir.Constant(I64, INT_MAX)),
                                        ir.Constant(I64, INT_MAX), n_v)
                fn = declare(builder, name, I32, [I8P, I8P, I32])
                r = builder.call(fn, [obj, buf, builder.trunc(capped, I32)])
                builder.store(builder.sext(r, I64), result)
                if tls_result:
                    with builder.if_then(builder.icmp_signed("<=", r, _const(0)),
                                         likely=False):
                        builder.store(_failure(builder, obj, r), result)
            return builder.load(result)

        return types.int64(ptr, arr, start, n), codegen

    return intrinsic(call)


def _failure(builder, ssl_p, r):
    """-SSL_get_error(ssl, r), with OpenSSL 3's 'unexpected EOF' SSL error as TLS_EOF."""
    err = builder.call(declare(builder, "SSL_get_error", I32, [I8P, I32]), [ssl_p, r])
    is_ssl = builder.icmp_signed("==", err, _const(O.SSL_ERROR_SSL))
    out = cgutils.alloca_once_value(builder, err)
    with builder.if_then(is_ssl, likely=False):
        last = builder.call(declare(builder, "ERR_peek_last_error", I64, []), [])
        # not a system error, library SSL, reason UNEXPECTED_EOF_WHILE_READING (err.h)
        plain = builder.icmp_unsigned("==", builder.and_(last, ir.Constant(I64, O.ERR_SYSTEM_FLAG)),
                                      ir.Constant(I64, 0))
        lib = builder.and_(builder.lshr(last, ir.Constant(I64, O.ERR_LIB_OFFSET)),
                           ir.Constant(I64, O.ERR_LIB_MASK))
        reason = builder.and_(last, ir.Constant(I64, O.ERR_REASON_MASK))
        eof = builder.and_(plain, builder.and_(
            builder.icmp_unsigned("==", lib, ir.Constant(I64, O.ERR_LIB_SSL)),
            builder.icmp_unsigned("==", reason,
                                  ir.Constant(I64, O.SSL_R_UNEXPECTED_EOF_WHILE_READING))))
        builder.store(builder.select(eof, _const(O.SSL_ERROR_SYSCALL), err), out)
    return builder.neg(builder.sext(builder.load(out), I64))


tls_read = buffer_call("SSL_read")
tls_read.__doc__ = ("tls_read(ssl, into arr[start:start+n]): plaintext bytes, or a TLS_* code "
                    "(module docstring).")
tls_write = buffer_call("SSL_write")
tls_write.__doc__ = ("tls_write(ssl, arr[start:start+n]): bytes taken (whole records), or a "
                     "TLS_* code.")
# memory BIOs (``TlsConnection.memory_bio``): the caller moves the ciphertext itself
bio_write = buffer_call("BIO_write", tls_result=False)
bio_write.__doc__ = "bio_write(bio, arr[start:start+n]): ciphertext handed to OpenSSL."
bio_read = buffer_call("BIO_read", tls_result=False)
bio_read.__doc__ = "bio_read(bio, into arr[start:start+n]): ciphertext to send (<= 0: none)."


@intrinsic
def clear_errors(typingctx):
    """``ERR_clear_error()``: empty this thread's OpenSSL error queue from jitted code (after
    a failure on a connection the caller drops, so the next connection's ``SSL_get_error``
    does not read a stale error)."""
    def codegen(context, builder, sig, args):
        builder.call(declare(builder, "ERR_clear_error", ir.VoidType(), []), [])
        return context.get_dummy_value()

    return types.none(), codegen


@njit(cache=True, _nrt=False)
def account(stats, r, inbound):
    """Count a ``tls_read`` (``inbound``) or ``tls_write`` result into a TLS_STATS array;
    True when the connection is finished (closed, cut or failed)."""
    if r > 0:
        if inbound:
            stats[0]["bytes_in"] += r
        else:
            stats[0]["bytes_out"] += r
        return False
    if r == TLS_CLOSED:
        stats[0]["close_notify"] += 1
    elif r == TLS_EOF:
        stats[0]["eof"] += 1
    elif r == TLS_ERROR:
        stats[0]["errors"] += 1
    else:
        return False
    return True


@njit(cache=True, _nrt=False)
def _as_errno(r, sending):
    """A TLS_* failure in ``recv``/``send`` terms: -EAGAIN (call again), 0 (clean close,
    reading), -EPIPE (clean close, writing), -ECONNRESET (cut mid-stream), -EPROTO."""
    if r == TLS_WANT_READ or r == TLS_WANT_WRITE:
        return -EAGAIN
    if r == TLS_CLOSED:
        return -EPIPE if sending else 0
    if r == TLS_EOF:
        return -ECONNRESET
    return -EPROTO


def wire_errno_code(errno: int) -> int:
    """The TLS_* result behind a ``wire_recv``/``wire_send`` end (0 = clean close), for
    ``TlsConnection.describe``."""
    return {0: TLS_CLOSED, EPIPE: TLS_CLOSED, ECONNRESET: TLS_EOF}.get(errno, TLS_ERROR)


@njit(cache=True, _nrt=False)
def wire_recv(fd, ssl_p, buf, start, n):
    """``sock_recv`` conventions (bytes, 0 at a clean end, -errno) over plain TCP
    (``ssl_p == 0``) or TLS, so a hot loop switches wire by passing an ``SSL*``."""
    if ssl_p == 0:
        return sock_recv(fd, buf, start, n)
    r = tls_read(ssl_p, buf, start, n)
    return r if r > 0 else _as_errno(r, False)


@njit(cache=True, _nrt=False)
def wire_send(fd, ssl_p, buf, start, n):
    """``sock_send`` conventions over plain TCP or TLS (see ``wire_recv``)."""
    if ssl_p == 0:
        return sock_send(fd, buf, start, n)
    r = tls_write(ssl_p, buf, start, n)
    return r if r > 0 else _as_errno(r, True)


def wait_fd(fd: int, ssl_p: int) -> WaitFd:
    """The ``WaitFd`` a blocking idle strategy sleeps on for this wire: over TLS
    (``ssl_p != 0``) with ``SSL_has_pending`` as its probe, so it never sleeps in poll while
    OpenSSL holds decrypted or read-ahead bytes the socket no longer shows."""
    if ssl_p == 0:
        return WaitFd(fd)
    return WaitFd(fd, ctypes.cast(O.lib().SSL_has_pending, ctypes.c_void_p).value, ssl_p)
