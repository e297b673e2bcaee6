"""Aeron's two hot calls from jitted code, and the fragment handler they hand to the poll.

``aeron_offer`` and ``aeron_poll`` are external declarations of
``aeron_exclusive_publication_offer`` and ``aeron_subscription_poll`` resolved by symbol
name (``aeron.load_for_jit``), as ``pipeline.runtime.libc`` does for libc, so
``cache=True`` keeps working across processes.

The poll's fragment handler is ``stage_fragment``, a numba ``cfunc`` (C ABI, no Python):
its ``clientd`` is a staging buffer (``new_stage``) into which it copies the one fragment
a ``fragment_limit=1`` poll delivers; the receiver's duty cycle then writes the staged
records into its ring, or keeps them staged while that ring is full (Aeron's flow control
then holds the sender back: nothing is dropped on the receiving side).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, types
from numba.extending import intrinsic

from pipeline.bridge import aeron
from pipeline.runtime.libc import I8P, I32, I64, buffer_args, declare, is_buffer_call

aeron.load_for_jit()

STAGE_LENGTH_BYTES = 8  # the staging buffer: int64 length (0: empty), then the message
STAGE_BYTES = 64 * 1024 + STAGE_LENGTH_BYTES  # Aeron's largest MTU (64 KiB) fits


def _ints(*tys) -> bool:
    return all(isinstance(t, types.Integer) for t in tys)


@intrinsic
def aeron_offer(typingctx, pub, arr, start, n):
    """``aeron_exclusive_publication_offer(pub, &arr[start], n, NULL, NULL)``: the new
    stream position (> 0: Aeron took the message), or a negative ``aeron.*`` code."""
    if not is_buffer_call(pub, arr, start, n):
        return None

    def codegen(context, builder, sig, args):
        handle, buf, length = buffer_args(context, builder, sig, args)
        fn = declare(builder, "aeron_exclusive_publication_offer", I64,
                     [I8P, I8P, I64, I8P, I8P])
        null = ir.Constant(I8P, None)
        return builder.call(fn, [builder.inttoptr(handle, I8P), buf, length, null, null])

    return types.int64(pub, arr, start, n), codegen


@intrinsic
def aeron_poll(typingctx, sub, handler, clientd, limit):
    """``aeron_subscription_poll(sub, handler, clientd, limit)``: fragments delivered, or
    a negative value on error. ``handler`` is a cfunc's address, ``clientd`` a pointer."""
    if not _ints(sub, handler, clientd, limit):
        return None

    def codegen(context, builder, sig, args):
        sub_p, handler_p, clientd_p = (
            builder.inttoptr(context.cast(builder, a, t, types.int64), I8P)
            for a, t in zip(args[:3], sig.args[:3], strict=True))
        n = context.cast(builder, args[3], sig.args[3], types.int64)
        fn = declare(builder, "aeron_subscription_poll", I32, [I8P, I8P, I8P, I64])
        return builder.sext(builder.call(fn, [sub_p, handler_p, clientd_p, n]), I64)

    return types.int64(sub, handler, clientd, limit), codegen


FRAGMENT_HANDLER = types.void(types.CPointer(types.uint8), types.CPointer(types.uint8),
                              types.uintp, types.voidptr)


@cfunc(FRAGMENT_HANDLER, cache=True)
def stage_fragment(clientd, buffer, length, header):
    """Copy a fragment into the staging buffer ``clientd`` (``new_stage``), then its length;
    one that does not fit is recorded as length -1 (the duty cycle reports it)."""
    stage = carray(clientd, STAGE_BYTES)
    n = np.int64(length)
    if n > STAGE_BYTES - STAGE_LENGTH_BYTES:
        n = np.int64(-1)
    else:
        src = carray(buffer, length)
        for i in range(length):
            stage[STAGE_LENGTH_BYTES + i] = src[i]
    for k in range(STAGE_LENGTH_BYTES):  # little-endian int64, written last
        stage[k] = (n >> (8 * k)) & 0xFF


def new_stage() -> tuple[np.ndarray, np.ndarray]:
    """(staging bytes, the same as int64 words: [0] the length, then the message): pass
    ``stage.ctypes.data`` as the poll's clientd; the duty cycle clears [0] when done."""
    stage = np.zeros(STAGE_BYTES, np.uint8)
    return stage, stage.view(np.int64)
