"""The process's libssl and libcrypto, bound with ctypes (cold path) and made visible to
jitted code by name (hot path).

The libraries are the ones Python's ``ssl`` module already mapped (found in
``/proc/self/maps`` after ``import ssl``), so there is one OpenSSL in the process, not two
with separate error queues and init state. ``load_for_jit()`` hands the same files to
LLVM (``load_library_permanently``) so that external declarations such as ``SSL_read``
resolve by symbol name, also when numba loads the code from its on-disk cache.
Constants are OpenSSL 3.0's (``ssl.h``, ``x509_vfy.h``, ``err.h``); the version is checked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ssl
from ctypes import c_char_p, c_int, c_long, c_size_t, c_uint64, c_ulong, c_void_p
from functools import cache

import llvmlite.binding as llvm

# SSL_get_error
SSL_ERROR_NONE = 0
SSL_ERROR_SSL = 1
SSL_ERROR_WANT_READ = 2
SSL_ERROR_WANT_WRITE = 3
SSL_ERROR_SYSCALL = 5
SSL_ERROR_ZERO_RETURN = 6

# tls_read/tls_write results (pipeline.tls.io): -SSL_get_error, except that OpenSSL 3's
# "unexpected EOF" SSL error is reported as TLS_EOF
TLS_ERROR = -SSL_ERROR_SSL
TLS_WANT_READ = -SSL_ERROR_WANT_READ
TLS_WANT_WRITE = -SSL_ERROR_WANT_WRITE
TLS_EOF = -SSL_ERROR_SYSCALL
TLS_CLOSED = -SSL_ERROR_ZERO_RETURN
_WORDS = {TLS_WANT_READ: "want read (no data yet)", TLS_WANT_WRITE: "want write (socket full)",
          TLS_CLOSED: "peer sent close_notify",
          TLS_EOF: "peer closed the connection mid-stream (no close_notify)",
          TLS_ERROR: "TLS protocol error"}

# SSL_ctrl / SSL_CTX_ctrl commands (most SSL_* "functions" are macros over these)
SSL_CTRL_MODE = 33
SSL_CTRL_SET_READ_AHEAD = 41
SSL_CTRL_SET_TLSEXT_HOSTNAME = 55
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
SSL_CTRL_SET_MAX_PROTO_VERSION = 124
TLSEXT_NAMETYPE_HOST_NAME = 0

SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1
SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2
SSL_MODE_AUTO_RETRY = 0x4
SSL_MODE_RELEASE_BUFFERS = 0x10
SSL_OP_NO_RENEGOTIATION = 1 << 30
SSL_KEY_UPDATE_NONE = -1

TLS1_2_VERSION = 0x0303
TLS1_3_VERSION = 0x0304
SSL_VERIFY_NONE = 0
SSL_VERIFY_PEER = 1
SSL_FILETYPE_PEM = 1

# err.h (3.0): the packed error code and the one reason the hot path looks at
ERR_SYSTEM_FLAG = 1 << 31
ERR_LIB_OFFSET = 23
ERR_LIB_MASK = 0xFF
ERR_REASON_MASK = 0x7FFFFF
ERR_LIB_SSL = 20
SSL_R_UNEXPECTED_EOF_WHILE_READING = 294

# x509_vfy.h: verification results that get a cause of their own
X509_V_OK = 0
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT = 2
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10
X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT = 18
X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN = 19
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
X509_V_ERR_CERT_REVOKED = 23
X509_V_ERR_HOSTNAME_MISMATCH = 62
X509_V_ERR_IP_ADDRESS_MISMATCH = 64

_PROTOTYPES = {  # name: (restype, argtypes), libssl unless in _CRYPTO
    "TLS_client_method": (c_void_p, []),
    "TLS_server_method": (c_void_p, []),
    "SSL_CTX_new": (c_void_p, [c_void_p]),
    "SSL_CTX_free": (None, [c_void_p]),
    "SSL_CTX_ctrl": (c_long, [c_void_p, c_int, c_long, c_void_p]),
    "SSL_CTX_set_options": (c_uint64, [c_void_p, c_uint64]),
    "SSL_CTX_set_verify": (None, [c_void_p, c_int, c_void_p]),
    "SSL_CTX_set_default_verify_paths": (c_int, [c_void_p]),
    "SSL_CTX_load_verify_locations": (c_int, [c_void_p, c_char_p, c_char_p]),
    "SSL_CTX_use_certificate_chain_file": (c_int, [c_void_p, c_char_p]),
    "SSL_CTX_use_PrivateKey_file": (c_int, [c_void_p, c_char_p, c_int]),
    "SSL_CTX_check_private_key": (c_int, [c_void_p]),
    "SSL_new": (c_void_p, [c_void_p]),
    "SSL_free": (None, [c_void_p]),
    "SSL_ctrl": (c_long, [c_void_p, c_int, c_long, c_void_p]),
    "SSL_set_fd": (c_int, [c_void_p, c_int]),
    "SSL_set_connect_state": (None, [c_void_p]),
    "SSL_set_accept_state": (None, [c_void_p]),
    "SSL_set1_host": (c_int, [c_void_p, c_char_p]),
    "SSL_get0_param": (c_void_p, [c_void_p]),
    "SSL_do_handshake": (c_int, [c_void_p]),
    "SSL_get_error": (c_int, [c_void_p, c_int]),
    "SSL_get_verify_result": (c_long, [c_void_p]),
    "SSL_get_version": (c_char_p, [c_void_p]),
    "SSL_version": (c_int, [c_void_p]),
    "SSL_set_ciphersuites": (c_int, [c_void_p, c_char_p]),
    "SSL_set_cipher_list": (c_int, [c_void_p, c_char_p]),
    "SSL_CTX_set_num_tickets": (c_int, [c_void_p, c_size_t]),
    "SSL_CTX_set_ciphersuites": (c_int, [c_void_p, c_char_p]),
    "SSL_get_current_cipher": (c_void_p, [c_void_p]),
    "SSL_CIPHER_get_name": (c_char_p, [c_void_p]),
    "SSL_get_session": (c_void_p, [c_void_p]),
    "SSL_SESSION_has_ticket": (c_int, [c_void_p]),
    "SSL_key_update": (c_int, [c_void_p, c_int]),
    "SSL_get_key_update_type": (c_int, [c_void_p]),
    "SSL_read": (c_int, [c_void_p, c_void_p, c_int]),
    "SSL_write": (c_int, [c_void_p, c_void_p, c_int]),
    "SSL_pending": (c_int, [c_void_p]),
    "SSL_has_pending": (c_int, [c_void_p]),
    "SSL_shutdown": (c_int, [c_void_p]),
    "SSL_set0_rbio": (None, [c_void_p, c_void_p]),
    "SSL_set0_wbio": (None, [c_void_p, c_void_p]),
    "BIO_s_mem": (c_void_p, []),
    "BIO_new": (c_void_p, [c_void_p]),
    "X509_VERIFY_PARAM_set1_ip_asc": (c_int, [c_void_p, c_char_p]),
    "X509_verify_cert_error_string": (c_char_p, [c_long]),
    "ERR_get_error": (c_ulong, []),
    "ERR_peek_last_error": (c_ulong, []),
    "ERR_error_string_n": (None, [c_ulong, c_char_p, c_size_t]),
    "ERR_clear_error": (None, []),
    "OpenSSL_version_num": (c_ulong, []),
}
_CRYPTO = {"BIO_s_mem", "BIO_new", "X509_VERIFY_PARAM_set1_ip_asc",
           "X509_verify_cert_error_string", "ERR_get_error", "ERR_peek_last_error",
           "ERR_error_string_n", "ERR_clear_error", "OpenSSL_version_num"}


def _mapped(stem: str) -> str | None:
    """Path of the mapped shared object whose file name starts with ``stem`` (``libssl.so``)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if path.rsplit("/", 1)[-1].startswith(stem):
                    return path
    except OSError:
        pass
    return None


@cache
def library_paths() -> tuple[str, str]:
    """(libssl, libcrypto) as loaded behind Python's ``ssl`` (else the linker's choice)."""
    import _ssl  # noqa: F401  (maps libssl/libcrypto into the process)

    paths = []
    for stem, name in (("libssl.so", "ssl"), ("libcrypto.so", "crypto")):
        path = _mapped(stem) or ctypes.util.find_library(name)
        if path is None:
            raise OSError(f"lib{name} not found (Python's ssl module is {ssl.OPENSSL_VERSION})")
        paths.append(path)
    return paths[0], paths[1]


class _Lib:
    """Typed ctypes functions of libssl/libcrypto as attributes (``lib.SSL_new``)."""

    def __init__(self) -> None:
        ssl_path, crypto_path = library_paths()
        dlls = {"ssl": ctypes.CDLL(ssl_path), "crypto": ctypes.CDLL(crypto_path)}
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(dlls["crypto" if name in _CRYPTO else "ssl"], name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        version = self.OpenSSL_version_num()
        if version >> 28 < 3:
            raise OSError(f"OpenSSL >= 3.0 required (constants are 3.0's), found {version:#x}")


@cache
def lib() -> _Lib:
    return _Lib()


@cache
def load_for_jit() -> None:
    """Make libssl/libcrypto symbols resolvable by name for LLVM (once per process)."""
    for path in library_paths():
        llvm.load_library_permanently(path)


def error_queue() -> str:
    """Drain this thread's OpenSSL error queue into one line ('' when empty)."""
    fns = lib()
    buf = ctypes.create_string_buffer(256)
    parts = []
    while code := fns.ERR_get_error():
        fns.ERR_error_string_n(code, buf, len(buf))
        parts.append(buf.value.decode(errors="replace"))
    return "; ".join(parts)


def cipher_name(ssl_p: int) -> str:
    """The negotiated cipher of session ``ssl_p`` (OpenSSL's name; "?" before one is)."""
    fns = lib()
    cipher = fns.SSL_get_current_cipher(ssl_p)
    return fns.SSL_CIPHER_get_name(cipher).decode() if cipher else "?"


def is_unexpected_eof(code: int) -> bool:
    """An OpenSSL 3 packed error for 'the peer closed the TCP stream without close_notify'."""
    return (not code & ERR_SYSTEM_FLAG and (code >> ERR_LIB_OFFSET) & ERR_LIB_MASK == ERR_LIB_SSL
            and code & ERR_REASON_MASK == SSL_R_UNEXPECTED_EOF_WHILE_READING)


def describe(code: int, detail: str = "") -> str:
    """Words for a TLS_* result, with OpenSSL's own detail when there is some."""
    words = _WORDS.get(code, f"TLS result {code}")
    return f"{words} ({detail})" if detail else words
