"""Which engines ``audit`` judges: the one of the environment, or several named as the
Docker CLI names them (``--host``, ``--context``, ``--tls*``), each with what identifies it
on every row of the report.

Contexts are read from the CLI's context store (``$DOCKER_CONFIG``, default ``~/.docker``),
TLS flags become a ``docker.tls.TLSConfig`` as the CLI would make them; nothing here
connects.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_HOST = "unix:///var/run/docker.sock"


class FleetError(Exception):
    """An engine that cannot even be named (an unknown context, a TLS file missing)."""


@dataclass(frozen=True)
class Target:
    """One engine to audit: ``label`` as the operator named it (a host or a context)."""

    label: str
    host: str
    tls: Any = None  # docker.tls.TLSConfig, or None for the environment's (DOCKER_TLS_VERIFY...)


def targets(hosts: list[str], contexts: list[str], tlsverify: bool = False, tlscacert: str | None = None,
            tlscert: str | None = None, tlskey: str | None = None) -> list[Target]:
    """The engines to audit, in the order named; none named: the environment's one."""
    out = [_context(name) for name in contexts]
    tls = _tls(tlsverify, tlscacert, tlscert, tlskey)
    for host in hosts:
        if host.startswith("tcp://") and tls is not None:
            out.append(Target(host, host.replace("tcp://", "https://", 1), tls))
        else:
            out.append(Target(host, host))
    if not out:
        host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        out.append(Target(host, host))
    return out


def _tls(verify: bool, cacert: str | None, cert: str | None, key: str | None) -> Any:
    """As the CLI: ``--tlsverify`` (or any of the files) means TLS; files default to
    ``$DOCKER_CERT_PATH`` (else ``~/.docker``) ``ca.pem``, ``cert.pem``, ``key.pem``."""
    if not (verify or cacert or cert or key):
        return None
    import docker.tls

    base = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
    cacert = cacert or os.path.join(base, "ca.pem")
    cert, key = cert or os.path.join(base, "cert.pem"), key or os.path.join(base, "key.pem")
    for path in (cacert, cert, key) if verify else (cert, key):
        if not os.path.isfile(path):
            raise FleetError(f"TLS file not found: {path}")
    try:
        return docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=cacert if verify else None,
                                    verify=verify)
    except docker.errors.TLSParameterError as e:
        raise FleetError(f"TLS: {e}") from None


def _context(name: str) -> Target:
    """A context of the CLI's store: ``$DOCKER_CONFIG/contexts`` (default ``~/.docker``),
    ``meta/<sha256 of the name>/meta.json`` for the endpoint, ``tls/<same>/docker/`` for its
    certificates. Read here, not with docker-py's ContextAPI, which looks for the store next
    to a ``config.json`` and, when there is none (``docker context create`` makes none),
    in the working directory."""
    if name == "default":
        host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        return Target(name, host)
    store = Path(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")) / "contexts"
    digest = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((store / "meta" / digest / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
    except FileNotFoundError:
        raise FleetError(f"no Docker context {name!r} (docker context ls)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FleetError(f"context {name!r}: unreadable ({type(e).__name__}: {e})") from None
    host = str(endpoint.get("Host") or DEFAULT_HOST)
    tls_dir = store / "tls" / digest / "docker"
    if not host.startswith("tcp://") or not tls_dir.is_dir():
        return Target(name, host)
    import docker.tls

    files = {f: str(tls_dir / f) if (tls_dir / f).is_file() else None
             for f in ("ca.pem", "cert.pem", "key.pem")}
    verify = not endpoint.get("SkipTLSVerify", False)
    client = (files["cert.pem"], files["key.pem"]) if files["cert.pem"] and files["key.pem"] else None
    tls = docker.tls.TLSConfig(client_cert=client, ca_cert=files["ca.pem"] if verify else None, verify=verify)
    return Target(name, host.replace("tcp://", "https://", 1), tls)
