"""Python ``ssl`` contexts under the same policy as ``client``, for the TLS that is not
on a hot path: REST snapshots (``http.client`` on a helper thread) and the simulator's
asyncio servers (``asyncio.start_server(..., ssl=server_ssl_context(...))``).

Same rules: TLS >= 1.2, the system CA store or ``ca_file``, hostname checked, verification
off only when asked and then a warning each time a context is made (the REST client makes
one per fetch, so: every connect), and verification failures as ``TlsVerifyError`` with
the same causes.
"""

from __future__ import annotations

import logging
import ssl

from pipeline.tls.client import CAUSES, REJECTED, TlsError, TlsVerifyError

log = logging.getLogger(__name__)


def client_ssl_context(ca_file: str | None = None, verify: bool = True,
                       who: str = "") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)  # None: the system store
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        log.warning("TLS to %s: certificate verification is OFF (verify=false); the peer "
                    "is not authenticated", who or "?")
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as e:  # names the files, never their content
        raise TlsError(f"loading {cert_file} with key {key_file} failed: {e.reason}") from e
    return ctx


def as_tls_error(e: ssl.SSLError, who: str) -> TlsError:
    """The ``client`` exception for a failure Python's ``ssl`` raised."""
    if isinstance(e, ssl.SSLCertVerificationError):
        cause = CAUSES.get(e.verify_code, REJECTED)
        return TlsVerifyError(f"TLS to {who}: certificate verification failed: {cause} "
                              f"({e.verify_message}, X509 error {e.verify_code})", cause,
                              e.verify_code)
    return TlsError(f"TLS to {who}: {e.reason or e}")
