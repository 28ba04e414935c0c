"""A real systemd for the service tests: a debootstrapped Debian bookworm with systemd,
dbus and docker.io, booted with ``systemd-nspawn -b`` (PID 1 on the test machines is not
systemd), facts from ../shared/TESTBED.md:

- ``SYSTEMD_SECCOMP=0 systemd-nspawn -b --register=no --keep-unit --capability=all`` boots
  it as a child of the test process (no machined, no host systemd needed);
- dockerd inside needs the cgroup v1 controllers writable (a small unit remounts them),
  ``bridge: none`` and iptables off;
- ``systemd-sysctl``, ``systemd-binfmt`` and ``systemd-modules-load`` are masked so
  nothing inside writes the host kernel's state; the machine has a private network (only
  its own loopback), so it needs nothing from the network once made;
- a reboot inside ends nspawn with exit code 133: the harness boots it again.

The rootfs is cached outside the checkout (a cold debootstrap takes minutes), keyed by the
suite, the mirror, the package list and RECIPE; each test session boots a copy. Python
packages for the README's ``pip install .`` are downloaded on the host into a cache keyed
by constraints.txt and handed to pip inside through ``PIP_FIND_LINKS``/``PIP_NO_INDEX``:
the machine has no network, a quirk of the harness, not of the install.

Commands run inside with ``nsenter`` into the namespaces of the machine's PID 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from engines import _mirror
from harness import RUNC_WRAPPER, busybox_tar, wait_until

SUITE = "bookworm"
# systemd as PID 1, dbus for systemctl, docker.io (containerd, runc) as the engine, and what
# README.adoc's service section installs with apt (present already: the install is offline).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "docker.io", "ca-certificates",
            "gcc", "pkg-config", "libsystemd-dev", "python3-dev", "python3-venv")
RECIPE = "2"  # bump when debootstrap_rootfs changes what it makes
MASKED = ("systemd-sysctl.service", "systemd-binfmt.service", "systemd-modules-load.service",
          "proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.mount",
          "systemd-networkd-wait-online.service", "getty@tty1.service")
BUSYBOX_TAR = "/root/busybox.tar"
IMAGE = "covenant-test/busybox:1"
REBOOT = 133
CGROUP_RW_UNIT = """[Unit]
Description=Make the cgroup v1 controllers writable for dockerd (test machine only)
DefaultDependencies=no
Before=containerd.service docker.service
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d"; done'

[Install]
WantedBy=sysinit.target
"""
# The test VMs' bounding set lacks CAP_SYS_RESOURCE: runc gets the harness's wrapper that
# leaves it out of a --privileged container's capabilities (tests/harness.py, RUNC_WRAPPER).
RUNC = "/usr/local/sbin/runc-covtest"
DAEMON_JSON = json.dumps({"bridge": "none", "iptables": False, "ip-masq": False, "ip-forward": False,
                          "runtimes": {"covtest": {"path": RUNC}}, "default-runtime": "covtest"})


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "docker-covenant-tests" / "systemd"


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def debootstrap_rootfs(rootfs: Path, mirror: str) -> None:
    """The slow part, cached: debootstrap the machine with its packages."""
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise RuntimeError("debootstrap not found: install the Debian package debootstrap "
                           "(.ci/run does it; see README.adoc, Testing)")
    done = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}",
                           SUITE, str(rootfs), mirror], capture_output=True, text=True, check=False,
                          timeout=2400)
    if done.returncode != 0:
        raise RuntimeError(f"debootstrap failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def configure(rootfs: Path) -> None:
    """Set a copy up to boot under nspawn on a test host without touching the host."""
    units = rootfs / "etc/systemd/system"
    for unit in MASKED:
        link = units / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (units / "cgroup-rw.service").write_text(CGROUP_RW_UNIT)
    wants = units / "sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "cgroup-rw.service").symlink_to("/etc/systemd/system/cgroup-rw.service")
    (rootfs / "etc/docker").mkdir(exist_ok=True)
    (rootfs / "etc/docker/daemon.json").write_text(DAEMON_JSON + "\n")
    wrapper = rootfs / RUNC.lstrip("/")
    wrapper.write_text(RUNC_WRAPPER.replace("{runc}", "/usr/sbin/runc"))
    wrapper.chmod(0o755)
    (rootfs / "etc/hostname").write_text("covenant-machine\n")
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)


def cached_rootfs() -> Path:
    """The cached machine rootfs (a directory), made if missing."""
    mirror = _mirror()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    ready = cache / f"rootfs-{_key(SUITE, mirror, *PACKAGES, RECIPE)}"
    if ready.is_dir():
        return ready
    work = Path(tempfile.mkdtemp(prefix="covsd-make-", dir=cache))
    try:
        debootstrap_rootfs(work / "rootfs", mirror)
        (work / "rootfs").rename(ready)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ready


def cached_wheels(repo: Path) -> Path:
    """What ``pip install .`` needs, downloaded on the host: the pinned dependencies
    (systemd-python is a source package: pip builds it inside, with the README's apt
    packages) and the build backend pip's isolated build asks for."""
    constraints = repo / "constraints.txt"
    text = constraints.read_text()
    cache = cache_dir()
    wheels = cache / f"wheels-{_key(text, sys.version)}"
    if wheels.is_dir():
        return wheels
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="covsd-wheels-", dir=cache))
    try:
        requirements = [line.split("==")[0] for line in text.splitlines()
                        if line.strip() and not line.startswith("#")]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-cache-dir",
                        "-d", str(work), "-c", str(constraints), *requirements, "setuptools", "wheel"],
                       check=True, capture_output=True, timeout=600)
        work.rename(wheels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return wheels


def _copy_checkout(repo: Path, target: Path) -> None:
    skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".mypy_cache",
                                  ".ruff_cache", ".pytest_cache", "build", "dist")
    shutil.copytree(repo, target, ignore=skip, symlinks=True)


class Machine:
    """A booted copy of the cached rootfs; ``run`` executes a shell command inside."""

    def __init__(self, repo: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="covsd-"))
        self.rootfs = self.root / "rootfs"
        try:
            self.wheels = cached_wheels(repo)
            subprocess.run(["cp", "-a", "--reflink=auto", str(cached_rootfs()), str(self.rootfs)],
                           check=True)
            configure(self.rootfs)
            _copy_checkout(repo, self.rootfs / "root/docker-covenant")
            with tarfile.open(self.rootfs / BUSYBOX_TAR.lstrip("/"), "w") as tar:
                busybox_tar(tar)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.proc: subprocess.Popen[bytes] | None = None
        self.boots = 0

    def boot(self, timeout: float = 120) -> None:
        nspawn = shutil.which("systemd-nspawn")
        if not nspawn:
            raise RuntimeError("systemd-nspawn not found: install the Debian package systemd-container "
                               "(.ci/run does it; see README.adoc, Testing)")
        log = open(self.root / "console.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [nspawn, "-b", "-D", str(self.rootfs), "--register=no", "--keep-unit", "--capability=all",
             "--private-network", "--console=read-only", f"--machine=covsd{os.getpid()}",
             f"--bind-ro={self.wheels}:/wheels"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "SYSTEMD_SECCOMP": "0"})
        log.close()
        self.boots += 1
        wait_until(self._init_pid, timeout, 0.1, "the machine's PID 1")
        wait_until(self._booted, timeout, 0.5, "the machine to finish booting")

    def _init_pid(self) -> int | None:
        """The host PID of the machine's PID 1: nspawn's descendant that is 1 in its own
        PID namespace."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited:\n{self.console_tail()}")
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                    return pid
            todo.extend(int(c) for c in children)
        return None

    def _booted(self) -> bool:
        done = self.run("systemctl is-system-running", check=False)
        return done.stdout.strip() in ("running", "degraded")

    def run(self, command: str, check: bool = True, timeout: float = 600,
            env: dict[str, str] | None = None, cwd: str = "/root") -> subprocess.CompletedProcess[str]:
        """``sh -c command`` inside the machine, as root, in a clean environment."""
        pid = self._init_pid()
        if pid is None:
            raise RuntimeError("the machine is not running")
        environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                       "HOME": "/root", "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0",
                       **(env or {})}
        done = subprocess.run(
            ["nsenter", "-t", str(pid), "-a", "-r", "-w", "--", "/usr/bin/env", "-i",
             *(f"{k}={v}" for k, v in environment.items()), "/bin/sh", "-c", f"cd {cwd} && {command}"],
            capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"inside the machine, {command!r} exited {done.returncode}:\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def reboot(self, timeout: float = 120) -> None:
        """``systemctl reboot`` inside; nspawn ends with 133 and is booted again."""
        assert self.proc is not None
        self.run("systemctl reboot", check=False)
        code = self.proc.wait(timeout=timeout)
        if code != REBOOT:
            raise RuntimeError(f"systemd-nspawn exited {code} on reboot, not {REBOOT}:\n"
                               f"{self.console_tail()}")
        self.boot(timeout)

    def console_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            text = (self.root / "console.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def shutdown(self) -> None:
        """Power the machine off (nspawn turns SIGTERM into a clean shutdown), kill it if it
        does not end, and remove the copy."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def wait_inside(machine: Machine, command: str, timeout: float, what: str) -> str:
    """Poll a command inside until it succeeds; its stdout."""
    deadline = time.monotonic() + timeout
    while True:
        done = machine.run(command, check=False)
        if done.returncode == 0:
            return done.stdout
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {command!r} still fails:\n"
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        time.sleep(0.5)
