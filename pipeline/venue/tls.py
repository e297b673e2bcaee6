"""TLS for the simulator's listeners (``hft sim --tls``): one server certificate for the
WebSocket, REST and FIX endpoints, generated at start-up by a throwaway CA
(``pipeline.tls.certs``, under ``state_dir/tls``, keys 0600) or taken from files.

Python's ``ssl`` serves it (asyncio/websockets; the venue is not our hot path). Clients
trust ``ca_file`` (printed in the JSON line); only paths are logged, never key material.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from pipeline.tls.certs import TestCA
from pipeline.tls.pyssl import server_ssl_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerTls:
    context: ssl.SSLContext
    ca_file: str  # what a client must trust
    server_name: str  # a name the certificate carries (for SNI / the hostname check)


def server_tls(host: str, state_dir: Path, cert_file: str = "", key_file: str = "",
               ca_file: str = "") -> ServerTls:
    """From files when ``cert_file`` is given (``ca_file``: the CA that signed it, else the
    certificate itself is the trust anchor), else a new CA and a certificate for ``host``,
    ``localhost`` and ``127.0.0.1``."""
    if cert_file:
        if not key_file:
            raise ValueError("sim: tls_cert needs tls_key")
        log.info("TLS: serving %s (key %s)", cert_file, key_file)
        return ServerTls(server_ssl_context(cert_file, key_file), ca_file or cert_file,
                         "localhost")
    ca = TestCA(Path(state_dir) / "tls", name="hft sim CA")
    names = tuple(dict.fromkeys((host, "localhost", "127.0.0.1")))
    cert = ca.issue(names, stem="sim")
    return ServerTls(server_ssl_context(str(cert.cert_file), str(cert.key_file)),
                     str(ca.ca_file), "localhost")
