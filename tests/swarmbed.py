"""A small Swarm on one machine: three private dockerds, each in a network namespace of its
own, joined by veth links to a bridge in a fourth namespace, with addresses that exist only
inside those namespaces. The host's network is never touched: every link is made inside a
namespace the harness created, and goes away with it.

Each namespace is held by a ``sleep`` the harness started (``unshare --net``); a node's
dockerd enters it with ``nsenter --net`` and gets a private mount namespace of its own
(``unshare --mount --propagation private``), so a restarted dockerd comes back on the same
address. The test process reaches every dockerd over its unix socket, which lives on the
shared filesystem although the network is private.

A service's mount names one source path for every node (``/var/run/docker.sock`` in the
README). Here each dockerd also listens on ``NODE_SOCKET``, a path that is the same for all
nodes: in each node's mount namespace the harness bind-mounts that node's own directory
over ``NODE_RUN``, so the same path is each node's own socket, as ``/var/run/docker.sock``
is on real hosts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
from baseimage import cache_dir as base_cache_dir
from baseimage import cache_key as base_cache_key
from baseimage import import_base_image
from engines import EngineBinaries, _mirror, engine_binaries
from harness import REPO, PrivateDockerd, busybox_image, require, wait_until

SUBNET = "10.214.14"  # inside the namespaces only
MANAGER_PORT = 2377


class NetNamespace:
    """A network namespace held by a sleeping process of ours; gone when that process is."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen([require("unshare", "util-linux"), "--net", "--", "sleep", "infinity"],
                                     start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        ours = os.readlink("/proc/self/ns/net")
        wait_until(lambda: self._ns() not in ("", ours), 10, 0.02, f"namespace {name}")

    def _ns(self) -> str:
        try:
            return os.readlink(f"/proc/{self.proc.pid}/ns/net")
        except OSError:
            return ""

    @property
    def path(self) -> str:
        return f"/proc/{self.proc.pid}/ns/net"

    def run(self, *cmd: str) -> str:
        done = subprocess.run([require("nsenter", "util-linux"), f"--net={self.path}", "--", *cmd],
                              capture_output=True, text=True, check=False, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"in namespace {self.name}: {' '.join(cmd)}: {done.stderr.strip()}")
        return done.stdout

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@dataclass
class Node:
    name: str
    address: str
    netns: NetNamespace
    daemon: PrivateDockerd
    run_dir: Path  # bind-mounted over Swarmbed.node_run in the node's mount namespace
    node_id: str = ""

    @property
    def host(self) -> str:
        return self.daemon.host

    @property
    def socket(self) -> Path:
        return self.daemon.socket

    def client(self) -> docker.DockerClient:
        return self.daemon.client()


@dataclass
class Swarmbed:
    """Three (or ``size``) nodes; ``nodes[0]`` is the manager. ``node_run``/``node_socket``
    are the per-node path every node sees as its own (the stand-in for /var/run/docker.sock)."""

    engine: EngineBinaries
    size: int = 3
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="covswarm-")))
    nodes: list[Node] = field(default_factory=list)
    hub: NetNamespace | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def node_run(self) -> Path:
        return self.root / "run"

    @property
    def node_socket(self) -> Path:
        return self.node_run / "docker.sock"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def start(self) -> Swarmbed:
        began = time.monotonic()
        self.node_run.mkdir(mode=0o755)
        ip = require("ip", "iproute2")
        self.hub = NetNamespace("hub")
        self.hub.run(ip, "link", "set", "lo", "up")
        self.hub.run(ip, "link", "add", "br0", "type", "bridge")
        self.hub.run(ip, "link", "set", "br0", "up")
        for i in range(self.size):
            name = f"node{i + 1}"
            netns = NetNamespace(name)
            address = f"{SUBNET}.{i + 1}"
            # the veth is made inside the hub namespace, its peer moved straight into the node's
            self.hub.run(ip, "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0",
                         "netns", str(netns.proc.pid))
            self.hub.run(ip, "link", "set", f"v{name}", "master", "br0", "up")
            netns.run(ip, "link", "set", "lo", "up")
            netns.run(ip, "addr", "add", f"{address}/24", "dev", "eth0")
            netns.run(ip, "link", "set", "eth0", "up")
            run_dir = self.root / f"{name}-run"
            run_dir.mkdir(mode=0o755)
            daemon = PrivateDockerd(extra_args=("-H", f"unix://{self.node_socket}"),
                                    wrap=self._wrapper(netns, run_dir, name), engine=self.engine)
            self.nodes.append(Node(name, address, netns, daemon, run_dir))
        self.timings["network"] = time.monotonic() - began
        for node in self.nodes:
            node.daemon.start()
        self.timings["dockerds"] = time.monotonic() - began
        self._form_swarm()
        self.timings["swarm"] = time.monotonic() - began
        return self

    def _wrapper(self, netns: NetNamespace, run_dir: Path, name: str) -> Callable[[list[str]], list[str]]:
        nsenter, unshare = require("nsenter", "util-linux"), require("unshare", "util-linux")
        target = str(self.node_run)

        def wrap(cmd: list[str]) -> list[str]:
            # nsenter, unshare and sh each exec the next: the PID started is dockerd's
            return [nsenter, f"--net={netns.path}", "--", unshare, "--mount", "--propagation", "private",
                    "--uts", "--", "sh", "-c",
                    f'hostname {name} && mount --bind "{run_dir}" "{target}" && exec "$@"', "sh", *cmd]
        return wrap

    def _form_swarm(self) -> None:
        manager = self.manager.client()
        try:
            manager.swarm.init(advertise_addr=self.manager.address,
                               listen_addr=f"{self.manager.address}:{MANAGER_PORT}")
            token = manager.swarm.attrs["JoinTokens"]["Worker"]
            for node in self.nodes[1:]:
                c = node.client()
                try:
                    c.swarm.join([f"{self.manager.address}:{MANAGER_PORT}"], token,
                                 listen_addr=f"{node.address}:{MANAGER_PORT}",
                                 advertise_addr=node.address)
                finally:
                    c.close()
            for node in self.nodes:
                c = node.client()
                try:
                    node.node_id = c.info()["Swarm"]["NodeID"]
                finally:
                    c.close()
            wait_until(lambda: self._ready_nodes(manager) == len(self.nodes), 60, 0.5,
                       "every node to be ready in the swarm")
        finally:
            manager.close()

    def _ready_nodes(self, manager: docker.DockerClient) -> int:
        return sum(1 for n in manager.nodes.list() if n.attrs["Status"]["State"] == "ready")

    def ready_nodes(self) -> int:
        manager = self.manager.client()
        try:
            return self._ready_nodes(manager)
        finally:
            manager.close()

    def load_image(self, tar: Path) -> None:
        """``docker load`` a ``docker save`` tar into every node (no registry)."""
        data = tar.read_bytes()
        for node in self.nodes:
            c = node.client()
            try:
                c.images.load(data)
            finally:
                c.close()

    def busybox_everywhere(self) -> None:
        for node in self.nodes:
            c = node.client()
            try:
                busybox_image(c)
            finally:
                c.close()

    def stop(self) -> None:
        """Tear everything down: dockerds by the PIDs we started (their namespaces' mounts go
        with them), then the namespaces' holders (the veths and the bridge go with those)."""
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):  # whatever state the node is in
                c = node.client()
                c.swarm.leave(force=True)
                c.close()
        for node in self.nodes:
            node.daemon.stop()
        for node in self.nodes:
            node.netns.close()
        if self.hub is not None:
            self.hub.close()
        shutil.rmtree(self.root, ignore_errors=True)


def swarmbed(version: str = "20.10", size: int = 3) -> Swarmbed:
    bed = Swarmbed(engine_binaries(version), size)
    try:
        bed.start()
    except BaseException:
        bed.stop()
        raise
    sys.stderr.write(f"\nswarm bed ({version}, {size} nodes): " + ", ".join(
        f"{k} ready at {v:.1f} s" for k, v in bed.timings.items()) + "\n")
    return bed


def kill_node(node: Node, sig: int = signal.SIGKILL) -> None:
    node.daemon.kill(sig)


def image_cache_key() -> str:
    """The build context (what .dockerignore lets through, read as the Dockerfile copies it),
    the Dockerfile and the stand-in base image's key."""
    h = hashlib.sha256(base_cache_key(_mirror()).encode())
    files = [REPO / "Dockerfile", REPO / "setup.py", REPO / "README.adoc", REPO / "constraints.txt",
             REPO / "docker-covenant.yml", *sorted((REPO / "covenant").rglob("*.py"))]
    for f in files:
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def covenant_image_tar(tag: str) -> Path:
    """``docker save`` of the project's image built from its Dockerfile (as test_image.py builds
    it: on the stand-in base, on a private dockerd of the host's network, since the build needs
    the package registries), kept in the cache next to the base image and made again whenever
    the build context changes."""
    cache = base_cache_dir().parent / "images"
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / f"docker-covenant-{image_cache_key()}.tar"
    if tar.exists():
        return tar
    daemon = PrivateDockerd(engine=engine_binaries("20.10"))
    try:
        daemon.start()
        client = daemon.client()
        try:
            began = time.monotonic()
            import_base_image(client)
            client.images.build(path=str(REPO), tag=tag, network_mode="host", rm=True, forcerm=True,
                                pull=False, timeout=1200)
            partial = tar.with_suffix(".partial")
            with open(partial, "wb") as f:
                for chunk in client.images.get(tag).save(named=True):
                    f.write(chunk)
            partial.rename(tar)
            sys.stderr.write(f"\nimage built and saved in {time.monotonic() - began:.1f} s\n")
        finally:
            client.close()
    finally:
        daemon.stop()
    for old in cache.glob("docker-covenant-*.tar"):  # 200 MB each: older builds go (not one in use)
        if old != tar and time.time() - old.stat().st_mtime > 3600:
            old.unlink(missing_ok=True)
    return tar
