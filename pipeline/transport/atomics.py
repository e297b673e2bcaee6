"""Atomic int64 operations on shared arrays, as numba intrinsics.

Every shared cursor, flag and sequence word is read and written only through these.
A plain numba array load inside a spin loop is loop-invariant to LLVM, gets hoisted out
of the loop and spins forever (numba issue #1351); an atomic load is never hoisted.

The orderings follow the C11 model:
- ``load_acquire``: later loads/stores of this thread cannot move before it, and it sees
  everything the matching ``store_release`` made visible.
- ``store_release``: earlier loads/stores cannot move after it.
- ``load_relaxed``/``store_relaxed``: atomic (never torn, never hoisted) but unordered;
  pair them with explicit fences (seqlocks).
- ``cas`` and ``fetch_add`` are sequentially consistent read-modify-writes.

All take an int64 array and an element index; no bounds check is done (callers index
fixed header words).
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _element_pointer(context, builder, aryty, ary, idx):
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, [idx], wraparound=False)


def _is_int64_array(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


@intrinsic
def load_acquire(typingctx, arr, idx):
    """Atomic load with acquire ordering."""
    if not _is_int64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, idx), codegen


def _is_relaxed_array(arr) -> bool:
    """Relaxed loads/stores also take uint8 arrays (a pretoucher rewriting one byte)."""
    return _is_int64_array(arr) or (isinstance(arr, types.Array) and arr.ndim == 1 and
                                    arr.dtype == types.uint8)


@intrinsic
def load_relaxed(typingctx, arr, idx):
    """Atomic load with no ordering (monotonic): never torn, never hoisted."""
    if not _is_relaxed_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "monotonic", sig.args[0].dtype.bitwidth // 8)

    return arr.dtype(arr, idx), codegen


def _store(ordering: str):
    def store(typingctx, arr, idx, value):
        relaxed_ok = ordering == "monotonic" and _is_relaxed_array(arr)
        if not (_is_int64_array(arr) or relaxed_ok) or not isinstance(value, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
            dtype = sig.args[0].dtype
            val = context.cast(builder, args[2], sig.args[2], dtype)
            builder.store_atomic(val, ptr, ordering, dtype.bitwidth // 8)
            return context.get_dummy_value()

        return types.void(arr, idx, value), codegen

    return store


store_release = intrinsic(_store("release"))
store_release.__doc__ = "Atomic store with release ordering."
store_relaxed = intrinsic(_store("monotonic"))
store_relaxed.__doc__ = "Atomic store with no ordering (pair with a fence)."


@intrinsic
def cas(typingctx, arr, idx, expected, desired):
    """Compare-and-swap; returns True when the element held ``expected`` and now holds
    ``desired``."""
    if not _is_int64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        exp = context.cast(builder, args[2], sig.args[2], types.int64)
        new = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(ptr, exp, new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(arr, idx, expected, desired), codegen


@intrinsic
def fetch_add(typingctx, arr, idx, delta):
    """Atomic add; returns the previous value."""
    if not _is_int64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return types.int64(arr, idx, delta), codegen


def _fence(ordering: str):
    def fence(typingctx):
        def codegen(context, builder, sig, args):
            builder.fence(ordering)
            return context.get_dummy_value()

        return types.void(), codegen

    return fence


fence_acquire = intrinsic(_fence("acquire"))
fence_acquire.__doc__ = "Acquire fence: loads before it complete before loads/stores after it."
fence_release = intrinsic(_fence("release"))
fence_release.__doc__ = "Release fence: loads/stores before it complete before stores after it."
fence_seq_cst = intrinsic(_fence("seq_cst"))
fence_seq_cst.__doc__ = ("Full fence (x86 ``mfence``): stores before it are visible to every "
                         "thread before any load after it (Dekker: flag, fence, check).")

# LLVM target intrinsics rather than inline asm: no asm parser is needed to emit them.
_SPIN_HINT = {"x86_64": ("llvm.x86.sse2.pause", []), "AMD64": ("llvm.x86.sse2.pause", []),
              "aarch64": ("llvm.aarch64.hint", [1]), "arm64": ("llvm.aarch64.hint", [1])
              }.get(platform.machine())


@intrinsic
def cpu_relax(typingctx):
    """Spin-wait hint (x86 ``pause``, arm ``yield``): frees pipeline resources for the
    sibling hyperthread and avoids the memory-order mis-speculation flush when the awaited
    line changes. A no-op on other architectures."""

    def codegen(context, builder, sig, args):
        if _SPIN_HINT is not None:
            name, hint_args = _SPIN_HINT
            fnty = ir.FunctionType(ir.VoidType(), [_I32] * len(hint_args))
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            builder.call(fn, [ir.Constant(_I32, a) for a in hint_args])
        return context.get_dummy_value()

    return types.void(), codegen
