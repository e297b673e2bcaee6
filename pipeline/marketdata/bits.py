"""Count leading/trailing zeros of an int64, as LLVM intrinsics (one instruction)."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _count(name: str):
    def count(typingctx, x):
        if not isinstance(x, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            v = context.cast(builder, args[0], sig.args[0], types.int64)
            op = builder.ctlz if name == "ctlz" else builder.cttz
            return op(v, ir.Constant(ir.IntType(1), 0))

        return types.int64(x), codegen

    return intrinsic(count)


ctlz = _count("ctlz")
ctlz.__doc__ = "Leading zero bits of an int64 (64 for 0)."
cttz = _count("cttz")
cttz.__doc__ = "Trailing zero bits of an int64 (64 for 0)."
