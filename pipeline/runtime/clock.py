"""Nanosecond clocks callable from jitted code.

``clock_gettime`` goes through the vDSO (no syscall) when the clocksource is ``tsc``, so
a read costs ~15-25 ns: cheap enough for a timestamp per message (``hft bench transport``
measures it). CLOCK_MONOTONIC is the same clock in every process on the host, so a
timestamp taken in one process can be subtracted from one taken in another.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from pipeline.runtime.libc import CLOCK_MONOTONIC, CLOCK_REALTIME, I32, I64, TIMESPEC, declare
from pipeline.runtime.libc import timespec_field as _field


def _clock_intrinsic(clock_id: int):
    def clock(typingctx):
        def codegen(context, builder, sig, args):
            fn = declare(builder, "clock_gettime", I32, [I32, TIMESPEC.as_pointer()])
            ts = cgutils.alloca_once(builder, TIMESPEC)
            builder.call(fn, [ir.Constant(I32, clock_id), ts])
            sec = builder.load(_field(builder, ts, 0))
            nsec = builder.load(_field(builder, ts, 1))
            return builder.add(builder.mul(sec, ir.Constant(I64, 1_000_000_000)), nsec)

        return types.int64(), codegen

    return intrinsic(clock)


monotonic_ns = _clock_intrinsic(CLOCK_MONOTONIC)
monotonic_ns.__doc__ = "CLOCK_MONOTONIC in ns, from jitted code (same as time.monotonic_ns)."
realtime_ns = _clock_intrinsic(CLOCK_REALTIME)
realtime_ns.__doc__ = "CLOCK_REALTIME in ns since the epoch, from jitted code."
