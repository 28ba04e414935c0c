"""TLS for a test dockerd: a CA of the test's own, a server certificate for 127.0.0.1, and
one client certificate per user (its common name is the user dockerd passes the plugin).

Everything is made with ``openssl`` in a directory the caller owns and removes; nothing
is installed into the host's trust store.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.tls
from harness import require


@dataclass(frozen=True)
class Certs:
    ca: Path
    server: tuple[Path, Path]  # (certificate, key)
    users: dict[str, tuple[Path, Path]]


def _openssl(*args: str) -> None:
    subprocess.run([require("openssl", "openssl"), *args], check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, subject: str, extensions: str, ca: Path,
            ca_key: Path) -> tuple[Path, Path]:
    key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", subject)
    ext.write_text(extensions)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return cert, key


def make_certs(directory: Path, users: tuple[str, ...]) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=covenant-test-ca")
    server = _signed(directory, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n"
                     "extendedKeyUsage=serverAuth\n", ca, ca_key)
    clients = {u: _signed(directory, u, f"/CN={u}", "extendedKeyUsage=clientAuth\n", ca, ca_key)
               for u in users}
    return Certs(ca, server, clients)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tls_args(certs: Certs, port: int) -> tuple[str, ...]:
    """dockerd's flags: verify client certificates against our CA on a loopback port."""
    return ("--tlsverify", f"--tlscacert={certs.ca}", f"--tlscert={certs.server[0]}",
            f"--tlskey={certs.server[1]}", "-H", f"tcp://127.0.0.1:{port}")


def client_as(certs: Certs, user: str, port: int) -> docker.DockerClient:
    """A docker-py client that authenticates as ``user`` (its certificate)."""
    cert, key = certs.users[user]
    tls = docker.tls.TLSConfig(client_cert=(str(cert), str(key)), ca_cert=str(certs.ca), verify=True)
    # requests lets REQUESTS_CA_BUNDLE (set on the test machines) override a session's CA:
    # no environment, so that our CA is the one that verifies. A fixed API version, since
    # "auto" would ask the engine before that is set.
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls, version="1.41", timeout=60)
    client.api.trust_env = False
    return client
