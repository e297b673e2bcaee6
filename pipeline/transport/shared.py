"""Jitted atomic accessors callable from plain Python (cold path: set-up, tools, tests).

Python code never indexes a shared cursor array directly; it goes through these, so the
same acquire/release discipline holds on both sides of every word.
"""

from __future__ import annotations

from numba import njit

from pipeline.transport.atomics import cas, fetch_add, load_acquire, store_release


@njit(cache=True)
def atomic_load(words, index):
    return load_acquire(words, index)


@njit(cache=True)
def atomic_store(words, index, value):
    store_release(words, index, value)


@njit(cache=True)
def atomic_cas(words, index, expected, desired):
    return cas(words, index, expected, desired)


@njit(cache=True)
def atomic_add(words, index, delta):
    return fetch_add(words, index, delta)
