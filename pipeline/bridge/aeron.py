"""The Aeron C client inside ``pyaeron``'s extension, bound with ctypes (cold path only).

``pyaeron`` embeds the C client and the C media driver and exports the C API from its
``.so``, so this binds ``aeronc.h`` directly: set-up (context, client, publication,
subscription) here with ctypes, and the two hot calls (``offer``, ``poll``) in
``pipeline.bridge.calls`` as external declarations resolved by name from the same
library, so the jitted duty cycles call Aeron with no Python per message. Pointers travel
as int64 (``Publication.handle``, ``Subscription.handle``).
"""

from __future__ import annotations

import ctypes
import socket
import time
from ctypes import POINTER, c_bool, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint64, c_void_p
from functools import cache

import llvmlite.binding as llvm

# aeronc.h: aeron_exclusive_publication_offer results
NOT_CONNECTED = -1
BACK_PRESSURED = -2
ADMIN_ACTION = -3
CLOSED = -4
MAX_POSITION_EXCEEDED = -5
ERROR = -6
OFFER_WORDS = {NOT_CONNECTED: "not connected", BACK_PRESSURED: "back pressured",
               ADMIN_ACTION: "admin action", CLOSED: "publication closed",
               MAX_POSITION_EXCEEDED: "max position exceeded", ERROR: "error"}


class AeronError(RuntimeError):
    pass


class PublicationConstants(ctypes.Structure):
    """``aeron_publication_constants_t`` (aeronc.h, 1.4x-1.5x)."""

    _fields_ = [("channel", c_char_p), ("original_registration_id", c_int64),
                ("registration_id", c_int64), ("max_possible_position", c_int64),
                ("position_bits_to_shift", c_size_t), ("term_buffer_length", c_size_t),
                ("max_message_length", c_size_t), ("max_payload_length", c_size_t),
                ("stream_id", c_int32), ("session_id", c_int32), ("initial_term_id", c_int32),
                ("publication_limit_counter_id", c_int32),
                ("channel_status_indicator_id", c_int32)]


_PP = POINTER(c_void_p)
_PROTOTYPES = {
    "aeron_context_init": (c_int, [_PP]),
    "aeron_context_set_dir": (c_int, [c_void_p, c_char_p]),
    "aeron_context_set_driver_timeout_ms": (c_int, [c_void_p, c_uint64]),
    "aeron_context_close": (c_int, [c_void_p]),
    "aeron_init": (c_int, [_PP, c_void_p]),
    "aeron_start": (c_int, [c_void_p]),
    "aeron_close": (c_int, [c_void_p]),
    "aeron_async_add_exclusive_publication": (c_int, [_PP, c_void_p, c_char_p, c_int32]),
    "aeron_async_add_exclusive_publication_poll": (c_int, [_PP, c_void_p]),
    "aeron_async_add_subscription": (c_int, [_PP, c_void_p, c_char_p, c_int32, c_void_p,
                                             c_void_p, c_void_p, c_void_p]),
    "aeron_async_add_subscription_poll": (c_int, [_PP, c_void_p]),
    "aeron_exclusive_publication_is_connected": (c_bool, [c_void_p]),
    "aeron_exclusive_publication_constants": (c_int, [c_void_p,
                                                      POINTER(PublicationConstants)]),
    "aeron_exclusive_publication_close": (c_int, [c_void_p, c_void_p, c_void_p]),
    "aeron_subscription_is_connected": (c_bool, [c_void_p]),
    "aeron_subscription_close": (c_int, [c_void_p, c_void_p, c_void_p]),
    "aeron_errmsg": (c_char_p, []),
}


@cache
def library_path() -> str:
    """The ``pyaeron`` extension: the C client, the C driver and their exported API."""
    import pyaeron._pyaeron as ext

    return ext.__file__


class _Lib:
    def __init__(self) -> None:
        dll = ctypes.CDLL(library_path())
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(dll, name)
            fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name, fn)


@cache
def lib() -> _Lib:
    return _Lib()


@cache
def load_for_jit() -> None:
    """Make the Aeron symbols resolvable by name for LLVM (once per process)."""
    llvm.load_library_permanently(library_path())


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise AeronError(f"{what}: {lib().aeron_errmsg().decode(errors='replace')}")


class Client:
    """An ``aeron_t`` connected to the media driver in ``aeron_dir`` (its conductor thread
    sleeps when idle: the C client's default sleeping idle strategy)."""

    def __init__(self, aeron_dir: str, driver_timeout_ms: int = 10_000):
        fns = lib()
        ctx, client = c_void_p(), c_void_p()
        _check(fns.aeron_context_init(ctypes.byref(ctx)), "aeron_context_init")
        fns.aeron_context_set_dir(ctx, aeron_dir.encode())
        fns.aeron_context_set_driver_timeout_ms(ctx, driver_timeout_ms)
        rc = fns.aeron_init(ctypes.byref(client), ctx)
        if rc < 0:
            fns.aeron_context_close(ctx)
            _check(rc, f"aeron_init (is a media driver running in {aeron_dir}?)")
        _check(fns.aeron_start(client), "aeron_start")
        self.context, self.client = ctx, client
        self.aeron_dir = aeron_dir

    def _await(self, poll, async_handle, what: str, timeout: float):
        out = c_void_p()
        deadline = time.monotonic() + timeout
        while True:
            rc = poll(ctypes.byref(out), async_handle)
            _check(rc, what)
            if rc > 0:
                return out
            if time.monotonic() > deadline:
                raise AeronError(f"{what}: the media driver did not answer in {timeout:.0f}s")
            time.sleep(0.001)

    def add_publication(self, channel: str, stream_id: int, timeout: float = 10.0) -> Publication:
        fns = lib()
        handle = c_void_p()
        what = f"add exclusive publication {channel} stream {stream_id}"
        _check(fns.aeron_async_add_exclusive_publication(ctypes.byref(handle), self.client,
                                                         channel.encode(), stream_id), what)
        pub = self._await(fns.aeron_async_add_exclusive_publication_poll, handle, what, timeout)
        return Publication(pub, channel, stream_id)

    def add_subscription(self, channel: str, stream_id: int,
                         timeout: float = 10.0) -> Subscription:
        fns = lib()
        handle = c_void_p()
        what = f"add subscription {channel} stream {stream_id}"
        _check(fns.aeron_async_add_subscription(ctypes.byref(handle), self.client,
                                                channel.encode(), stream_id,
                                                None, None, None, None), what)
        sub = self._await(fns.aeron_async_add_subscription_poll, handle, what, timeout)
        return Subscription(sub, channel, stream_id)

    def close(self) -> None:
        """Closes the client and whatever publications and subscriptions it still has."""
        if self.client:
            lib().aeron_close(self.client)
            lib().aeron_context_close(self.context)
            self.client = self.context = None


class Publication:
    """An ``aeron_exclusive_publication_t``: one writer (the bridge's duty cycle)."""

    def __init__(self, ptr: c_void_p, channel: str, stream_id: int):
        self.ptr, self.channel, self.stream_id = ptr, channel, stream_id
        self.handle = int(ptr.value)
        consts = PublicationConstants()
        _check(lib().aeron_exclusive_publication_constants(ptr, ctypes.byref(consts)),
               "aeron_exclusive_publication_constants")
        self.max_payload_length = int(consts.max_payload_length)
        self.session_id = int(consts.session_id)

    def connected(self) -> bool:
        return bool(lib().aeron_exclusive_publication_is_connected(self.ptr))


class Subscription:
    def __init__(self, ptr: c_void_p, channel: str, stream_id: int):
        self.ptr, self.channel, self.stream_id = ptr, channel, stream_id
        self.handle = int(ptr.value)

    def connected(self) -> bool:
        return bool(lib().aeron_subscription_is_connected(self.ptr))


def wait_connected(what: Publication | Subscription, timeout: float) -> bool:
    """Cold-path wait (tests, benchmarks) for the other side to appear."""
    deadline = time.monotonic() + timeout
    while not what.connected():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody holds now (the kernel's choice), for loopback channels."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def udp_channel(port: int | None = None, host: str = "127.0.0.1") -> str:
    """``aeron:udp?endpoint=HOST:PORT`` (a free port when none is given)."""
    return f"aeron:udp?endpoint={host}:{free_udp_port(host) if port is None else port}"
