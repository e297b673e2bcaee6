"""Non-blocking ``send``/``recv`` on a socket fd from jitted code (libc, no Python).

Declared as external functions like ``pipeline.runtime.libc`` (resolved by name, so the
numba cache keeps working). Both return the byte count, or ``-errno`` (``-EAGAIN`` when
there is nothing to read / no room to write). Flags: MSG_DONTWAIT, and MSG_NOSIGNAL on
send so a closed peer is an error code, not a SIGPIPE.
"""

from __future__ import annotations

import errno

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from pipeline.runtime.libc import I8P, I32, I64, buffer_args, declare, is_buffer_call

MSG_DONTWAIT = 0x40
MSG_NOSIGNAL = 0x4000
EAGAIN = errno.EAGAIN


def _io_intrinsic(name: str, flags: int):
    def io(typingctx, fd, arr, start, n):
        if not is_buffer_call(fd, arr, start, n):
            return None

        def codegen(context, builder, sig, args):
            fd_v, ptr, n_v = buffer_args(context, builder, sig, args)
            fn = declare(builder, name, I64, [I32, I8P, I64, I32])
            r = builder.call(fn, [builder.trunc(fd_v, I32), ptr, n_v, ir.Constant(I32, flags)])
            err_fn = declare(builder, "__errno_location", I32.as_pointer(), [])
            failed = builder.icmp_signed("<", r, ir.Constant(I64, 0))
            err = builder.sext(builder.load(builder.call(err_fn, [])), I64)
            return builder.select(failed, builder.neg(err), r)

        return types.int64(fd, arr, start, n), codegen

    return intrinsic(io)


sock_send = _io_intrinsic("send", MSG_DONTWAIT | MSG_NOSIGNAL)
sock_send.__doc__ = "send(fd, arr[start:start+n]) non-blocking; bytes sent or -errno."
sock_recv = _io_intrinsic("recv", MSG_DONTWAIT)
sock_recv.__doc__ = "recv(fd, into arr[start:start+n]) non-blocking; bytes, 0 at EOF, or -errno."
