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

from pipeline.runtime.libc import I32, I64, declare

MSG_DONTWAIT = 0x40
MSG_NOSIGNAL = 0x4000
EAGAIN = errno.EAGAIN
I8P = ir.IntType(8).as_pointer()


def _io_intrinsic(name: str, flags: int):
    def io(typingctx, fd, arr, start, n):
        if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and
                isinstance(fd, types.Integer) and isinstance(start, types.Integer) and
                isinstance(n, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            fd_v = context.cast(builder, args[0], sig.args[0], types.int64)
            start_v = context.cast(builder, args[2], sig.args[2], types.int64)
            n_v = context.cast(builder, args[3], sig.args[3], types.int64)
            ary = context.make_array(sig.args[1])(context, builder, args[1])
            ptr = builder.gep(builder.bitcast(ary.data, I8P), [start_v])
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
