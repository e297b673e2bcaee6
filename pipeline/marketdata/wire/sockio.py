"""Non-blocking ``recv`` from jitted code (an external libc call, cache-friendly)."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from pipeline.runtime.libc import I32, I64, declare

MSG_DONTWAIT = 0x40
EAGAIN = 11


@intrinsic
def recv_nb(typingctx, fd, buf, offset, length):
    """``recv(fd, buf + offset, length, MSG_DONTWAIT)``: bytes read, 0 at end of stream,
    ``-errno`` on error (``-EAGAIN``: nothing to read now)."""
    if not (isinstance(fd, types.Integer) and isinstance(buf, types.Array)
            and buf.dtype == types.uint8):
        return None

    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        arr = context.make_array(sig.args[1])(context, builder, args[1])
        off = context.cast(builder, args[2], sig.args[2], types.int64)
        ptr = builder.gep(builder.bitcast(arr.data, i8p), [off])
        n = context.cast(builder, args[3], sig.args[3], types.int64)
        fdv = builder.trunc(context.cast(builder, args[0], sig.args[0], types.int64), I32)
        fn = declare(builder, "recv", I64, [I32, i8p, I64, I32])
        got = builder.call(fn, [fdv, ptr, n, ir.Constant(I32, MSG_DONTWAIT)])
        result = cgutils.alloca_once_value(builder, got)
        with builder.if_then(builder.icmp_signed("<", got, ir.Constant(I64, 0))):
            loc = declare(builder, "__errno_location", I32.as_pointer(), [])
            errno = builder.sext(builder.load(builder.call(loc, [])), I64)
            builder.store(builder.neg(errno), result)
        return builder.load(result)

    return types.int64(fd, buf, offset, length), codegen
