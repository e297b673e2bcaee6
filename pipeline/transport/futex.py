"""futex(2) on a word of a shared int64 array, from jitted code (no Python per call).

The futex is the low 32 bits of an int64 element (its first four bytes: little-endian
hosts only). It is a shared futex (no ``FUTEX_PRIVATE_FLAG``): the kernel keys it by the
mapped object and offset, so processes that map one segment at different addresses meet
on it. ``syscall`` is declared as an external function, as ``pipeline.runtime.libc`` does
(resolved by symbol name when cached code loads, so ``cache=True`` keeps working).
"""

from __future__ import annotations

import errno
import platform
import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

if sys.byteorder != "little":
    raise ImportError("pipeline.transport.futex: the futex is an int64's low half, which "
                      "sits first only on little-endian hosts")

SYS_FUTEX = {"x86_64": 202, "AMD64": 202, "aarch64": 98, "arm64": 98}[platform.machine()]
FUTEX_WAIT = 0
FUTEX_WAKE = 1
WAKE_ALL = (1 << 31) - 1  # INT_MAX: every sleeper
EAGAIN = errno.EAGAIN  # futex_wait: the word no longer held ``expected``
ETIMEDOUT = errno.ETIMEDOUT
EINTR = errno.EINTR

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_TIMESPEC = ir.LiteralStructType([_I64, _I64])  # struct timespec on 64-bit Linux


def _futex_call(context, builder, sig, args, op: int, val, timeout):
    """``syscall(SYS_futex, &words[index], op, val, timeout, NULL, 0)``: its result, or
    ``-errno`` when it failed. Every argument is passed as a 64-bit integer: ``syscall``
    reads its variadic arguments as longs."""
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I64, [_I64], var_arg=True), "syscall")
    null = ir.Constant(_I64, 0)
    r = builder.call(fn, [ir.Constant(_I64, SYS_FUTEX), builder.ptrtoint(ptr, _I64),
                          ir.Constant(_I64, op), val, timeout, null, null])
    errno_fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I32.as_pointer(), []), "__errno_location")
    failed = builder.icmp_signed("<", r, null)
    err = builder.sext(builder.load(builder.call(errno_fn, [])), _I64)
    return builder.select(failed, builder.neg(err), r)


def _low_half(builder, value):
    """The low 32 bits of an int64, zero-extended (the futex compares 32-bit words)."""
    return builder.zext(builder.trunc(value, _I32), _I64)


def _is_int64_array(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


@intrinsic
def futex_wait(typingctx, words, index, expected, timeout_ns):
    """Sleep while the low 32 bits of ``words[index]`` equal those of ``expected``: until a
    ``futex_wake`` on it, ``timeout_ns`` passes or a signal arrives. The kernel compares
    and queues atomically, so a change made before the call returns at once. Returns 0
    (woken), ``-EAGAIN`` (the word had changed), ``-ETIMEDOUT`` or ``-EINTR``."""
    if not (_is_int64_array(words) and isinstance(index, types.Integer)
            and isinstance(expected, types.Integer) and isinstance(timeout_ns, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ns = context.cast(builder, args[3], sig.args[3], types.int64)
        billion = ir.Constant(_I64, 1_000_000_000)
        ts = cgutils.alloca_once(builder, _TIMESPEC)  # relative, CLOCK_MONOTONIC
        zero = ir.Constant(_I32, 0)
        builder.store(builder.sdiv(ns, billion), builder.gep(ts, [zero, zero]))
        builder.store(builder.srem(ns, billion), builder.gep(ts, [zero, ir.Constant(_I32, 1)]))
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        return _futex_call(context, builder, sig, args, FUTEX_WAIT,
                           _low_half(builder, value), builder.ptrtoint(ts, _I64))

    return types.int64(words, index, expected, timeout_ns), codegen


@intrinsic
def futex_wake(typingctx, words, index, n):
    """Wake at most ``n`` sleepers on ``words[index]``; returns how many woke (or -errno)."""
    if not (_is_int64_array(words) and isinstance(index, types.Integer)
            and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        count = _low_half(builder, context.cast(builder, args[2], sig.args[2], types.int64))
        return _futex_call(context, builder, sig, args, FUTEX_WAKE, count,
                           ir.Constant(_I64, 0))

    return types.int64(words, index, n), codegen
