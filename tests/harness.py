"""The test bed: a private dockerd, a local busybox image, a real journal, and the daemon.

Everything here is started by the harness and stopped by it; nothing the host already
runs (its dockerd, its journal, its plugin folders) is stopped or reconfigured. The
quirks of the machines the tests run on stay here, never in the product.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from engines import EngineBinaries, engine_binaries

REPO = Path(__file__).resolve().parent.parent
IMAGE = "covenant-test/busybox:1"
# The authorization bed: the plugin's name, and its policy between tests (one section may
# run privileged, to test privileged exec).
AUTHZ_PLUGIN = "covtest"
AUTHZ_BASE_POLICY = ("debug: no\nallowed-priv:\n  privileged: yes\n  cap_drop_required: no\n"
                     "  security_opt_required: no\n")
BUSYBOX_APPLETS = ("sh", "sleep", "id", "true", "cat", "ls", "echo", "kill")

# This VM's capability bounding set lacks CAP_SYS_RESOURCE, so runc cannot start a
# --privileged container. The wrapper drops that one capability from the bundle on
# `create` (and from the process of a privileged `exec`) and is otherwise plain runc. It
# is /bin/sh because a Python wrapper adds interpreter start-up to every runc call (and
# ~600 ms to a kill).
RUNC_WRAPPER = r"""#!/bin/sh
for arg in "$@"; do case "$arg" in create|exec) cmd="$arg" ;; esac; done
if [ -n "$cmd" ]; then
  prev=""
  for arg in "$@"; do
    case "$prev" in --bundle|-b) spec="$arg/config.json" ;; --process|-p) spec="$arg" ;; esac
    prev="$arg"
  done
  if [ -n "$spec" ] && [ -f "$spec" ]; then
    sed -i 's/"CAP_SYS_RESOURCE",\{0,1\}//g; s/,\]/]/g' "$spec"
  fi
fi
exec {runc} "$@"
"""


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll until predicate() is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def require(binary: str, package: str) -> str:
    path = shutil.which(binary) or (binary if os.path.exists(binary) else None)
    if not path:
        raise RuntimeError(f"{binary} not found: install the Debian package {package} "
                           "(.ci/run does it; see README.adoc, Testing)")
    return path


class PrivateDockerd:
    """A dockerd of our own: own data root, exec root, pidfile and socket; no networking."""

    def __init__(self, extra_args: tuple[str, ...] = (),
                 wrap: Callable[[list[str]], list[str]] | None = None,
                 engine: EngineBinaries | None = None) -> None:
        _become_subreaper()
        self.engine = engine or engine_binaries("20.10")
        self.dockerd = self.engine.dockerd
        self.runc = require("runc", "runc")
        self.root = Path(tempfile.mkdtemp(prefix="covd-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.extra_args = extra_args
        self.wrap = wrap
        self.proc: subprocess.Popen[bytes] | None = None
        wrapper = self.root / "runc-wrapper"
        wrapper.write_text(RUNC_WRAPPER.replace("{runc}", self.runc))
        wrapper.chmod(0o755)
        (self.root / "daemon.json").write_text(json.dumps(
            {"runtimes": {"covtest": {"path": str(wrapper)}}, "default-runtime": "covtest"}))

    def command(self) -> list[str]:
        r = self.root
        cmd = [self.dockerd, "--config-file", str(r / "daemon.json"), "--data-root", str(r / "data"),
               "--exec-root", str(r / "exec"), "--pidfile", str(r / "dockerd.pid"), "-H", self.host,
               "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
               "--userland-proxy=false", *self.extra_args]
        return self.wrap(cmd) if self.wrap else cmd

    def start(self, timeout: float = 60) -> None:
        """Start dockerd and wait for its API. dockerd gives its own containerd 15 s to
        answer; on a loaded 2-core test machine, after a kill, that is sometimes not enough
        (dockerd then exits "timeout waiting for containerd to start"): a quirk of the test
        host, so the harness lets that containerd go and starts dockerd once more."""
        try:
            self._start_once(timeout)
        except RuntimeError as err:
            if "timeout waiting for containerd" not in str(err):
                raise
            self.proc = None
            self._wait_containerd_gone(kill=True)
            self._start_once(timeout)

    def _start_once(self, timeout: float) -> None:
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=self.engine.env())
        log.close()
        wait_until(self.ping, timeout, 0.1, "dockerd to answer /_ping")

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b"OK" in s.recv(1024)
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop our dockerd (only ours: by the PID we started) and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._wait_containerd_gone()

    def _wait_containerd_gone(self, kill: bool = False) -> None:
        """dockerd's containerd dies with it (parent-death signal), a moment later; a dockerd
        started before that moment waits on the dying one and fails."""
        try:
            pid = int((self.root / "exec" / "containerd" / "containerd.pid").read_text().strip())
        except (OSError, ValueError):
            return
        if kill and _alive(pid) and str(self.root) in _cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), 20, 0.05, "the old containerd to exit")
        _reap(pid)

    def _kill_leftovers(self) -> None:
        """A SIGKILLed dockerd leaves its containerd (the next start reuses it, as after a real
        crash) and container shims; a torn-down harness leaves nothing of ours behind."""
        mine = str(self.root)
        for pid in _pids_mentioning(mine):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        for pid in _pids_mentioning(mine):
            wait_until(lambda pid=pid: not _alive(pid), 20, 0.1, f"process {pid} to exit")
            _reap(pid)

    def restart(self, sig: int = signal.SIGKILL) -> None:
        self.kill(sig)
        self.start()

    def remove_all_containers(self) -> None:
        client = self.client()
        for c in client.containers.list(all=True):
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):  # tearing down whatever state it is in
                self.remove_all_containers()
            self.kill(signal.SIGTERM)
        self._kill_leftovers()
        _reap_zombies()
        self._unmount()
        shutil.rmtree(self.root, ignore_errors=True)

    def _unmount(self) -> None:
        root = str(self.root)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if line.split()[4].startswith(root)]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _become_subreaper() -> None:
    """On these machines PID 1 does not reap orphans: the containerd of a SIGKILLed dockerd
    stays a zombie that the next dockerd takes for a live one and waits on. As a child
    subreaper the test process inherits such orphans and can reap them itself."""
    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _reap_zombies() -> None:
    """Orphaned shims we inherited as subreaper and that have exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _pids_mentioning(text: str) -> list[int]:
    """PIDs whose command line names our private root (its containerd and shims)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def busybox_tar(tar: tarfile.TarFile, under: str = "") -> None:
    """Add a one-binary busybox root (bin/busybox and its applet links) to ``tar``."""
    tar.add(require("/bin/busybox", "busybox-static"), arcname=f"{under}bin/busybox")
    for applet in BUSYBOX_APPLETS:
        link = tarfile.TarInfo(f"{under}bin/{applet}")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)


def busybox_image(client: docker.DockerClient, tag: str = IMAGE) -> str:
    """Import a one-binary busybox image: no registry is needed (none is reachable)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        busybox_tar(tar)
    repo, _, version = tag.partition(":")
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=version)
    return tag


class JournalBed:
    """The host's journal if one is running; otherwise a standalone systemd-journald of ours."""

    SOCKET = Path("/run/systemd/journal/socket")
    DEV_LOG = Path("/dev/log")

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.linked_dev_log = False
        self.created_dir = False
        self.journalctl = require("journalctl", "systemd")

    def start(self) -> None:
        if self._answers():
            return  # a journal we did not start: use it, touch nothing
        journald = require("/lib/systemd/systemd-journald", "systemd")
        self.created_dir = not self.SOCKET.parent.exists()
        self.proc = subprocess.Popen([journald], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_until(self._answers, 20, 0.05, "systemd-journald to open its socket")
        if not self.DEV_LOG.exists() and not self.DEV_LOG.is_symlink():
            self.DEV_LOG.symlink_to(self.SOCKET.parent / "dev-log")
            self.linked_dev_log = True

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(str(self.SOCKET))
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.linked_dev_log:
            self.DEV_LOG.unlink(missing_ok=True)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            if self.created_dir:
                shutil.rmtree(self.SOCKET.parent, ignore_errors=True)

    def entries(self, ident: str, **match: str) -> list[dict[str, Any]]:
        cmd = [self.journalctl, "-o", "json", "--no-pager", f"SYSLOG_IDENTIFIER={ident}",
               *(f"{k}={v}" for k, v in match.items())]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def messages(self, ident: str, **match: str) -> list[str]:
        return [str(e.get("MESSAGE", "")) for e in self.entries(ident, **match)]

    def wait_for(self, ident: str, text: str, timeout: float = 15, **match: str) -> dict[str, Any]:
        """The first entry whose MESSAGE contains text, waiting for it to arrive."""
        def found() -> dict[str, Any] | None:
            return next((e for e in self.entries(ident, **match) if text in str(e.get("MESSAGE"))), None)
        try:
            return wait_until(found, timeout, 0.05, f"journal line {text!r}")
        except TimeoutError:
            raise AssertionError(f"no journal line containing {text!r} for {ident}; got:\n"
                                 + "\n".join(self.messages(ident))) from None

    def stream(self, ident: str) -> tuple[socket.socket, dict[str, str]]:
        """What systemd gives a unit with StandardError=journal: a stream connected to
        journald's stdout socket after the stream header (identifier, no unit, priority
        info, level prefixes read), and the JOURNAL_STREAM value naming it. Each line
        written to it is an entry with SYSLOG_IDENTIFIER=ident and _TRANSPORT=stdout."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(self.SOCKET.parent / "stdout"))
        s.shutdown(socket.SHUT_RD)
        s.sendall(f"{ident}\n\n6\n1\n0\n0\n0\n".encode())
        st = os.fstat(s.fileno())
        return s, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


class Covenant:
    """docker-covenant as a user runs it: its own process, a policy file, the private engine."""

    def __init__(self, workdir: Path, docker_host: str, policy: str | None, ident: str | None = None,
                 env: dict[str, str] | None = None, argv: list[str] | None = None,
                 cwd: Path | None = None) -> None:
        """policy None: no policy file of ours; argv then says how to run it."""
        self.ident = ident or f"covtest-{uuid.uuid4().hex[:10]}"
        self.workdir = workdir
        self.cwd = cwd or workdir
        self.config = workdir / f"{self.ident}.yml"
        if policy is not None:
            self.config.write_text(f"syslog_ident: {self.ident}\n{policy}")
        self.argv = argv or [sys.executable, "-m", "covenant", "--config", str(self.config)]
        self.notify_path = workdir / f"{self.ident}.notify"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.2)
        self.env = {**os.environ, "DOCKER_HOST": docker_host, "NOTIFY_SOCKET": str(self.notify_path),
                    "PYTHONPATH": str(REPO), **(env or {})}
        self.env.pop("DOCKER_TLS_VERIFY", None)
        self.stderr_path = workdir / f"{self.ident}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.notes: list[str] = []

    def start(self, wait_ready: bool = True, timeout: float = 30) -> Covenant:
        err = open(self.stderr_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=err, stderr=subprocess.STDOUT,
                                     cwd=self.cwd)
        err.close()
        if wait_ready:
            self.wait_note("READY=1", timeout)
        return self

    def read_notes(self) -> list[str]:
        while True:
            try:
                self.notes.extend(self.notify.recv(4096).decode().splitlines())
            except (TimeoutError, BlockingIOError):
                return self.notes

    def wait_note(self, note: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"docker-covenant exited {self.proc.returncode}:\n{self.output()}")
            return note in self.read_notes()
        wait_until(seen, timeout, 0.0, f"sd_notify {note}")

    def output(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait: returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def close(self) -> None:
        try:
            if self.alive():
                self.stop()
        finally:
            self.notify.close()
            self.notify_path.unlink(missing_ok=True)


def host_python_mounts(*extra: str) -> dict[str, dict[str, str]]:
    """Run the host's own Python and this checkout inside a busybox container: there is no
    registry to pull a Python image from here, so the Dockerfile's base cannot be built."""
    paths = {"/usr", "/lib", "/lib64", sys.base_prefix, sys.prefix, str(REPO), *extra}
    return {p: {"bind": p, "mode": "ro"} for p in sorted(paths) if Path(p).exists()}


def run_container(client: docker.DockerClient, name: str | None = None, command: list[str] | None = None,
                  image: str = IMAGE, **kwargs: Any) -> Any:
    """A busybox container on no network; a compliant one unless told otherwise."""
    kwargs = {"network_mode": "none", **kwargs}
    return client.containers.run(image, command or ["sleep", "300"], name=name, detach=True, **kwargs)


COMPLIANT = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}


def is_running(container: Any) -> bool:
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return bool(container.attrs["State"]["Running"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"



class SocketProxy:
    """A unix-socket relay in front of dockerd, to cut connections without stopping it."""

    def __init__(self, path: Path, upstream: Path, refuse: bytes | None = None) -> None:
        """refuse: drop any connection that sends a request containing these bytes."""
        self.path, self.upstream, self.refuse = path, upstream, refuse
        self.conns: list[socket.socket] = []
        self.accepting = threading.Event()
        self.accepting.set()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(64)
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.accepting.is_set():
                client.close()
                continue
            up = socket.socket(socket.AF_UNIX)
            up.connect(str(self.upstream))
            with self.lock:
                self.conns += [client, up]
            for a, b, refuse in ((client, up, self.refuse), (up, client, None)):
                threading.Thread(target=self._pump, args=(a, b, refuse), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, refuse: bytes | None) -> None:
        try:
            while data := src.recv(65536):
                if refuse is not None and refuse in data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every relayed connection (both ends)."""
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.server.close()
        self.cut()


def private_plugin_dir_wrapper(plugin_dir: Path) -> Callable[[list[str]], list[str]]:
    """Run dockerd in a private mount namespace where ``plugin_dir`` is bind-mounted over
    /run/docker/plugins: it finds our plugin there, and the host's folder is untouched."""
    setup = (f"if [ -d /run/docker/plugins ]; then mount --bind {plugin_dir} /run/docker/plugins; "
             "else mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins && "
             f"mount --bind {plugin_dir} /run/docker/plugins; fi")

    def wrap(cmd: list[str]) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", setup + '\nexec "$@"', "sh",
                *cmd]
    return wrap


class UnixHTTP:
    """Raw HTTP/1.1 to a unix socket: requests exactly as written, for the walk-around tests."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, str]:
        head = [f"{method} {target} HTTP/1.1", "Host: docker"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None and chunked:
            head.append("Transfer-Encoding: chunked")
            payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        elif body is not None:
            head.append(f"Content-Length: {len(body)}")
            payload = body
        else:
            payload = b""
        head.append("Connection: close")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(self.path))
            data = b""
            # dockerd may answer (a refusal) before it reads the whole body: read the answer
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(65536):
                    data += chunk
        status_line, _, rest = data.partition(b"\r\n")
        return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


class LocalRegistry:
    """A registry of our own (Debian's docker-registry, distribution 2.8) on 127.0.0.1 with a
    free port and a temporary storage folder; dockerd takes registries on 127.0.0.0/8 as
    insecure, so plain HTTP works. Stopped by the PID we started; the package's own service
    (if the machine runs it) is never used or touched."""

    def __init__(self) -> None:
        self.binary = require("/usr/bin/docker-registry", "docker-registry")
        self.root = Path(tempfile.mkdtemp(prefix="covreg-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> LocalRegistry:
        for _ in range(5):  # the free port may be taken between our probe and its bind
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            config = self.root / "config.yml"
            config.write_text(json.dumps({  # YAML is a superset of JSON
                "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")},
                            "delete": {"enabled": True}},
                "http": {"addr": self.host}}))
            log = open(self.root / "registry.log", "ab")  # noqa: SIM115 - owned by the process
            self.proc = subprocess.Popen([self.binary, "serve", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            try:
                wait_until(self._answers, timeout, 0.05, "docker-registry to answer /v2/")
                return self
            except RuntimeError:
                self.proc = None
        raise RuntimeError(f"docker-registry did not start:\n{self._log()}")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {self.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET /v2/ HTTP/1.0\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.0 200")
        except OSError:
            return False

    def _log(self) -> str:
        try:
            return (self.root / "registry.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
