"""A throwaway CA and server certificates, made with the ``openssl`` command line.

For the simulator (``hft sim --tls``), the tests and the benchmark: a CA generated at
start-up, a server certificate for the names it serves (DNS and IP SANs), and for tests an
expired one and one for the wrong host. Keys are EC P-256, written mode 0600 (umask 077
in the child, inside a 0700 temp dir); only paths are ever logged, never file content.
The ``openssl`` CLI is used because ``cryptography`` is not a dependency (see
/work/notes/tls.md); it ships with every OpenSSL install.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class ServerCert:
    cert_file: Path
    key_file: Path
    names: tuple[str, ...]


def _run(args: list[str], what: str) -> None:
    r = subprocess.run([OPENSSL, *args], capture_output=True, text=True, umask=0o077,
                       timeout=30, check=False)
    if r.returncode != 0:
        # openssl's stderr holds diagnostics and paths, never key material
        raise RuntimeError(f"openssl {what} failed ({r.returncode}): {r.stderr.strip()[-400:]}")


def _san(names: tuple[str, ...]) -> str:
    parts = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            parts.append(f"IP:{name}")
        except ValueError:
            parts.append(f"DNS:{name}")
    return ",".join(parts)


class TestCA:
    """A CA in ``directory`` (a fresh 0700 temp dir by default) that signs server certs."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: str | Path | None = None, name: str = "hft test CA",
                 days: int = 2):
        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="hft-tls-"))
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.ca_file = self.dir / "ca.pem"
        self.ca_key = self.dir / "ca.key"
        self._serial = 1
        _run(["req", "-x509", *EC_KEY, "-keyout", str(self.ca_key), "-out", str(self.ca_file),
              "-days", str(days), "-subj", f"/CN={name}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], "CA")
        log.info("TLS test CA: %s (key %s)", self.ca_file, self.ca_key)

    def issue(self, names: tuple[str, ...] = ("localhost", "127.0.0.1"), days: int = 2,
              stem: str | None = None) -> ServerCert:
        """A server certificate for ``names`` (first one is the CN). ``days=-1``: already
        expired (notAfter a day before notBefore = now)."""
        self._serial += 1
        stem = stem or f"server{self._serial}"
        key, csr = self.dir / f"{stem}.key", self.dir / f"{stem}.csr"
        cert, ext = self.dir / f"{stem}.pem", self.dir / f"{stem}.ext"
        ext.write_text(f"subjectAltName={_san(names)}\nextendedKeyUsage=serverAuth\n"
                       "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
        _run(["req", "-new", *EC_KEY, "-keyout", str(key), "-out", str(csr),
              "-subj", f"/CN={names[0]}"], f"key and request for {stem}")
        _run(["x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey",
              str(self.ca_key), "-set_serial", str(self._serial), "-days", str(days),
              "-out", str(cert), "-extfile", str(ext)], f"signing {stem}")
        csr.unlink()
        log.info("TLS test certificate %s for %s (%d days; key %s)", cert, ",".join(names),
                 days, key)
        return ServerCert(cert, key, names)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
