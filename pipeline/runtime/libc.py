"""libc calls usable from jitted code, declared as external LLVM functions.

ctypes function pointers would also work in nopython mode, but their addresses are baked
into the machine code and defeat numba's on-disk cache; external declarations are
resolved by symbol name when the cached code is loaded, so ``cache=True`` keeps working.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

I64 = ir.IntType(64)
I32 = ir.IntType(32)
I8P = ir.IntType(8).as_pointer()
TIMESPEC = ir.LiteralStructType([I64, I64])  # struct timespec on 64-bit Linux

CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1


def declare(builder, name: str, ret, params):
    """Declare (once per module) and return the external C function ``name``."""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, params), name)


def is_buffer_call(handle, arr, start, n) -> bool:
    """Typing check of ``f(handle, arr, start, n)``: integers and a uint8 array."""
    return (isinstance(arr, types.Array) and arr.dtype == types.uint8
            and all(isinstance(t, types.Integer) for t in (handle, start, n)))


def buffer_args(context, builder, sig, args):
    """Lowered ``(handle, arr, start, n)``: (handle as int64, ``&arr[start]`` as i8*, n as
    int64): the prologue of every buffer call (socket I/O, TLS records, Aeron offers)."""
    handle = context.cast(builder, args[0], sig.args[0], types.int64)
    start = context.cast(builder, args[2], sig.args[2], types.int64)
    n = context.cast(builder, args[3], sig.args[3], types.int64)
    ary = context.make_array(sig.args[1])(context, builder, args[1])
    return handle, builder.gep(builder.bitcast(ary.data, I8P), [start]), n


def timespec_field(builder, ts, index: int):
    zero = ir.Constant(I32, 0)
    return builder.gep(ts, [zero, ir.Constant(I32, index)])


def timespec(builder, ns):
    """A stack ``struct timespec`` holding ``ns`` (an int64 value) nanoseconds."""
    billion = ir.Constant(I64, 1_000_000_000)
    ts = cgutils.alloca_once(builder, TIMESPEC)
    builder.store(builder.sdiv(ns, billion), timespec_field(builder, ts, 0))
    builder.store(builder.srem(ns, billion), timespec_field(builder, ts, 1))
    return ts


@intrinsic
def sched_yield(typingctx):
    """Give the core to another runnable thread, if any."""

    def codegen(context, builder, sig, args):
        builder.call(declare(builder, "sched_yield", I32, []), [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def nanosleep(typingctx, ns):
    """Park the thread for ``ns`` nanoseconds (rounded up by the kernel's timer slack)."""
    if not isinstance(ns, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        fn = declare(builder, "nanosleep", I32, [TIMESPEC.as_pointer(), TIMESPEC.as_pointer()])
        ts = timespec(builder, context.cast(builder, args[0], sig.args[0], types.int64))
        builder.call(fn, [ts, ir.Constant(TIMESPEC.as_pointer(), None)])
        return context.get_dummy_value()

    return types.void(ns), codegen


POLLIN = 0x001
POLL_EVENTS_SHIFT, POLL_REVENTS_SHIFT = 32, 48  # struct pollfd {int fd; short events, revents}


def pollfd_word(fd: int, events: int = POLLIN) -> int:
    """A ``struct pollfd`` packed in an int64 (little-endian: fd, events, revents), so an
    int64 array of them is the array ``ppoll`` takes."""
    return (fd & 0xFFFF_FFFF) | (events << POLL_EVENTS_SHIFT)


@intrinsic
def ppoll(typingctx, pollfds, n, timeout_ns):
    """``ppoll(pollfds, n, timeout, NULL)`` on the first ``n`` pollfds of an int64 array of
    ``pollfd_word``s (their revents filled in): the count of ready fds, 0 at the timeout,
    -1 on an error or a signal. Nanosecond timeout, unlike ``poll``'s milliseconds."""
    if not (isinstance(pollfds, types.Array) and pollfds.dtype == types.int64
            and isinstance(n, types.Integer) and isinstance(timeout_ns, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        fn = declare(builder, "ppoll", I32, [I8P, I64, TIMESPEC.as_pointer(), I8P])
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        nfds = context.cast(builder, args[1], sig.args[1], types.int64)
        ts = timespec(builder, context.cast(builder, args[2], sig.args[2], types.int64))
        r = builder.call(fn, [builder.bitcast(ary.data, I8P), nfds, ts,
                              ir.Constant(I8P, None)])
        return builder.sext(r, I64)

    return types.int64(pollfds, n, timeout_ns), codegen


@intrinsic
def call_int_fn(typingctx, fn_addr, arg):
    """``((int (*)(void *)) fn_addr)(arg)``: a C function whose address comes at run time
    (from ctypes, e.g. OpenSSL's ``SSL_has_pending``). The address is data, not a constant
    of the machine code, so ``cache=True`` keeps working and no library must be loaded for
    the code to link in a process that never calls it."""
    if not (isinstance(fn_addr, types.Integer) and isinstance(arg, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(I32, [I8P])
        addr = context.cast(builder, args[0], sig.args[0], types.int64)
        value = context.cast(builder, args[1], sig.args[1], types.int64)
        fn = builder.inttoptr(addr, fnty.as_pointer())
        return builder.sext(builder.call(fn, [builder.inttoptr(value, I8P)]), I64)

    return types.int64(fn_addr, arg), codegen
