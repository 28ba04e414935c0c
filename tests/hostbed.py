"""Private dockerds configured as an operator would harden (or not) a host, for the daemon
and image audit (CV1nn): shared by ``test_audit_host.py`` and ``record_host.py``.

A daemon with a default bridge (needed for ``--icc``, which needs iptables) runs in its own
network namespace (``unshare --net``): its bridge and iptables rules exist only there. The
authorization plugin is a minimal allow-all plugin served by the test process on a unix
socket in a folder bind-mounted over ``/run/docker/plugins`` in dockerd's own mount
namespace (``harness.private_plugin_dir_wrapper``): the host's folder is untouched.
"""

from __future__ import annotations

import io
import json
import socketserver
import subprocess
import tarfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from engines import EngineBinaries
from harness import IMAGE, PrivateDockerd, private_plugin_dir_wrapper

PLUGIN = "covhostaudit"
TLS_PORT, PLAIN_PORT = 2376, 2375  # inside the daemon's own network namespace


class NetnsDockerd(PrivateDockerd):
    """A private dockerd in its own network namespace, with a default bridge and iptables
    (``--icc=false`` needs both) that exist only there."""

    def __init__(self, extra_args: tuple[str, ...], engine: EngineBinaries,
                 wrap: Callable[[list[str]], list[str]] | None = None) -> None:
        super().__init__(extra_args=extra_args, engine=engine, wrap=wrap)
        # --userns-remap: the remapped root must be able to traverse the data root
        self.root.chmod(0o711)

    def command(self) -> list[str]:
        cmd = [a for a in super().command() if a not in ("--bridge=none", "--iptables=false")]
        return ["unshare", "--net", *cmd]


class _Plugin(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server's name for the handler of POST
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = {"Implements": ["authz"]} if self.path == "/Plugin.Activate" else {"Allow": True}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[Any, Any]:
        request, _ = super().get_request()
        return request, ("plugin", 0)  # BaseHTTPRequestHandler wants a (host, port)


class AllowAllPlugin:
    """An authorization plugin that allows everything: enough for dockerd to have one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.server = _UnixHTTPServer(str(folder / f"{PLUGIN}.sock"), _Plugin)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        (self.folder / f"{PLUGIN}.sock").unlink(missing_ok=True)


def make_certs(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (``openssl``)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = {name: folder / name for name in ("ca.pem", "ca.key", "cert.pem", "key.pem", "srv.csr")}

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["ca.key"]),
        "-out", str(p["ca.pem"]), "-days", "1", "-subj", "/CN=covtest-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["key.pem"]), "-out", str(p["srv.csr"]),
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(p["srv.csr"]), "-CA", str(p["ca.pem"]), "-CAkey", str(p["ca.key"]),
        "-CAcreateserial", "-out", str(p["cert.pem"]), "-days", "1")
    return p


def hardened(work: Path, engine: EngineBinaries) -> tuple[NetnsDockerd, AllowAllPlugin]:
    """Every daemon item of the audit met: user namespaces, live restore, icc off on the
    default bridge, an authorization plugin, and its TCP socket with --tlsverify."""
    certs = make_certs(work / "certs")
    plugin = AllowAllPlugin(work / "plugins")
    args = ("--userns-remap=default", "--live-restore", "--icc=false", f"--authorization-plugin={PLUGIN}",
            "--tlsverify", f"--tlscacert={certs['ca.pem']}", f"--tlscert={certs['cert.pem']}",
            f"--tlskey={certs['key.pem']}", "-H", f"tcp://127.0.0.1:{TLS_PORT}")
    return NetnsDockerd(args, engine, wrap=private_plugin_dir_wrapper(plugin.folder)), plugin


def loose(engine: EngineBinaries, *extra: str) -> NetnsDockerd:
    """None met: a default bridge with icc on, and a TCP socket without TLS."""
    return NetnsDockerd(("-H", f"tcp://127.0.0.1:{PLAIN_PORT}", *extra), engine)


def tls_without_verify(work: Path, engine: EngineBinaries, verify_flag: bool = True) -> NetnsDockerd:
    """TLS on the TCP socket (--tls) but no client verification (--tlsverify=false; without
    that flag, what dockerd makes of --tls with a --tlscacert)."""
    certs = make_certs(work / "certs")
    # without --tlscacert dockerd 20.10 reads ~/.docker/ca.pem (and fails without one); with
    # it and no --tlsverify=false, dockerd reports client verification on
    verify = ["--tlsverify=false"] if verify_flag else []
    return NetnsDockerd(("--tls", *verify, f"--tlscacert={certs['ca.pem']}",
                         f"--tlscert={certs['cert.pem']}", f"--tlskey={certs['key.pem']}",
                         "-H", f"tcp://127.0.0.1:{TLS_PORT}"), engine)


IMAGES = {
    # the imported busybox: no USER, no HEALTHCHECK
    "busybox": None,
    "user-and-healthcheck": ["USER 1000:1000", "HEALTHCHECK --interval=30s CMD true"],
    "root-and-healthcheck-none": ["USER 0", "HEALTHCHECK NONE"],
}


def build_image(client: Any, tag: str, lines: list[str]) -> str:
    """Build ``FROM`` the busybox image with ``lines`` (no RUN: nothing runs, no network)."""
    dockerfile = "\n".join([f"FROM {IMAGE}", *lines]) + "\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile.encode())
        tar.addfile(info, io.BytesIO(dockerfile.encode()))
    client.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True, tag=tag, rm=True)
    return tag
