"""The container image, as an operator runs it: the project's Dockerfile built on a stand-in
``python:3.11-slim-bookworm`` made from Debian packages (``baseimage.py``; no registry is
reachable), then README.adoc's own ``docker run`` line run against a private dockerd.

The line is read from README.adoc between the ``image-run-line`` markers and run by a shell
as it stands; only the host's paths are changed (``host_specific``): the Docker socket is
the private engine's, the policy directory is the test's. The journal socket is the real
``/run/systemd/journal/socket`` of the journal bed. One engine is enough here: the
machine's dockerd 20.10.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from baseimage import import_base_image
from docker.utils.build import exclude_paths
from engines import engine_binaries
from harness import (
    REPO,
    JournalBed,
    PrivateDockerd,
    busybox_image,
    is_running,
    run_container,
    unique,
    wait_until,
)

IMAGE_TAG = "docker-covenant"
NAME = "docker-covenant"  # the run line's --name; the policy's section for it
BEGIN, END = "// image-run-line: begin", "// image-run-line: end"


def readme_run_line() -> str:
    """The one ``docker run`` command of README.adoc's container block, continuations joined."""
    text = (REPO / "README.adoc").read_text(encoding="utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    listing = block.split("----\n")[1]
    commands = listing.replace("\\\n", " ").splitlines()
    runs = [c for c in commands if c.startswith("docker run ")]
    assert len(runs) == 1, f"expected one docker run line in README.adoc's container block: {commands}"
    return runs[0]


def host_specific(line: str, socket: Path, policy_dir: Path) -> str:
    """Only the host's paths change: the engine's socket and the policy directory."""
    for old, new in (("stat -c %g /var/run/docker.sock", f"stat -c %g {socket}"),
                     ("source=/var/run/docker.sock,", f"source={socket},"),
                     ("source=/etc/docker-covenant,", f"source={policy_dir},")):
        assert line.count(old) == 1, f"{old!r} not once in the run line: {line}"
        line = line.replace(old, new)
    return line


def docker_cli() -> str:
    found = shutil.which("docker", path="/usr/bin") or shutil.which("docker")
    if not found:
        raise RuntimeError("docker not found: install the Debian package docker.io (.ci/run does it)")
    return found


def run_shell(line: str, host: str) -> subprocess.CompletedProcess[str]:
    docker = docker_cli()
    env = {**os.environ, "DOCKER_HOST": host, "PATH": f"{Path(docker).parent}:{os.environ.get('PATH', '')}"}
    env.pop("DOCKER_TLS_VERIFY", None)
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def policy_dir(text: str) -> Path:
    """A policy directory the container's user (10001) can read, as /etc/docker-covenant is."""
    d = Path(tempfile.mkdtemp(prefix="covimg-policy-"))
    d.chmod(0o755)
    (d / "docker-covenant.yml").write_text(text)
    (d / "docker-covenant.yml").chmod(0o644)
    return d


@pytest.fixture(scope="module")
def image_engine() -> Iterator[tuple[PrivateDockerd, docker.DockerClient]]:
    """A private dockerd 20.10 with the stand-in base imported and the Dockerfile built on it."""
    daemon = PrivateDockerd(engine=engine_binaries("20.10"))
    client = None
    try:
        daemon.start()
        client = daemon.client()
        busybox_image(client)
        began = time.monotonic()
        import_base_image(client)
        made = time.monotonic()
        # --bridge=none leaves builds without DNS: the build stage's apt and pip use the host's network
        client.images.build(path=str(REPO), tag=IMAGE_TAG, network_mode="host", rm=True, forcerm=True,
                            pull=False, timeout=1200)
        built = time.monotonic()
        sys.stderr.write(f"\nimage bed: base image made/imported in {made - began:.1f} s, "
                         f"Dockerfile built in {built - made:.1f} s\n")
        yield daemon, client
    finally:
        if client is not None:
            client.close()
        daemon.stop()


@pytest.fixture
def engine_client(image_engine: tuple[PrivateDockerd, docker.DockerClient]) -> Iterator[docker.DockerClient]:
    daemon, client = image_engine
    yield client
    daemon.remove_all_containers()


def journal_ident() -> str:
    return unique("covimg")


def test_image_is_what_the_issue_asks(engine_client: docker.DockerClient) -> None:
    image = engine_client.images.get(IMAGE_TAG)
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    labels = config["Labels"] or {}
    for key in ("title", "description", "version", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    # no layer of the final image carries the wheels (nor removes them afterwards)
    history = " ".join(str(h.get("CreatedBy", "")) for h in image.history())
    assert "/wheels" not in history
    probe = ("import importlib.metadata as m, os; "
             "print(json.dumps({'wheels': os.path.exists('/wheels'), 'src': os.path.exists('/src'), "
             "'versions': {d.metadata['Name'].lower(): d.version for d in m.distributions()}}))")
    out = engine_client.containers.run(IMAGE_TAG, ["-c", f"import json; {probe}"], entrypoint="python",
                                       network_mode="none", remove=True)
    seen = json.loads(out)
    assert not seen["wheels"] and not seen["src"]
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    installed = {k.replace("_", "-"): v for k, v in seen["versions"].items()}
    for name, version in pins.items():
        assert installed.get(name) == version, (name, installed.get(name))
    # the build context is what the Dockerfile copies: no .git, no tests, no virtual environment
    with open(REPO / ".dockerignore") as f:
        patterns = [p.strip() for p in f if p.strip() and not p.startswith("#")]
    context = exclude_paths(str(REPO), patterns)
    assert not any(p == ".git" or p.startswith((".git/", "tests/", ".venv/")) for p in context), context


def test_readme_run_line_enforces_and_passes_strict(image_engine: tuple[PrivateDockerd, docker.DockerClient],
                                                    engine_client: docker.DockerClient,
                                                    journal: JournalBed) -> None:
    daemon, _ = image_engine
    ident = journal_ident()
    policy = (f"syslog_ident: {ident}\nprofile: strict\ndebug: yes\n"
              f"{NAME}:\n  docker_socket_forbidden: no   # it needs the socket\n")
    pdir = policy_dir(policy)
    try:
        began = time.monotonic()
        journal_inode = JournalBed.SOCKET.stat().st_ino
        done = run_shell(host_specific(readme_run_line(), daemon.socket, pdir), daemon.host)
        assert done.returncode == 0, done.stderr
        cov = engine_client.containers.get(NAME)

        def health() -> str:
            cov.reload()
            assert cov.attrs["State"]["Running"], f"it exited:\n{cov.logs().decode(errors='replace')}"
            return str(cov.attrs["State"].get("Health", {}).get("Status"))
        wait_until(lambda: health() == "healthy", 60, 0.5, "the container to be healthy")
        sys.stderr.write(f"\nrun line: healthy {time.monotonic() - began:.1f} s after docker run\n")
        journal.wait_for(ident, f"{NAME}: this is docker-covenant's own container", COVENANT_ACTION="self")

        violator = run_container(engine_client, unique("img-violator"))
        try:
            stopped = journal.wait_for(ident, f"{violator.name}: stopping container")
        except AssertionError as e:
            running = is_running(violator)
            # the container holds the socket it was started with: a journald another session
            # started in its place (same path, new socket) never receives its lines
            replaced = not JournalBed.SOCKET.exists() or JournalBed.SOCKET.stat().st_ino != journal_inode
            raise AssertionError(f"{e}\n{console(cov)}\n--- violator running: {running}\n"
                                 f"--- journal socket replaced during the test: {replaced}") from None
        assert stopped["SYSLOG_IDENTIFIER"] == ident
        wait_until(lambda: not is_running(violator), 10, 0.1, "the violator to be killed")

        good = run_container(engine_client, unique("img-compliant"), user="1000", cap_drop=["ALL"],
                             security_opt=["no-new-privileges"], mem_limit="64m", pids_limit=32)
        journal.wait_for(ident, f"{good.name}: allowed")
        time.sleep(1)
        assert is_running(good)

        cov.reload()
        assert cov.attrs["State"]["Running"] and cov.attrs["RestartCount"] == 0
        assert health() == "healthy"
        assert not any(f"{NAME}: stopping" in m for m in journal.messages(ident))

        # the covenant container is compliant under strict with its one documented section ...
        audited = audit(daemon.host, pdir / "docker-covenant.yml")
        assert audited[NAME] == [], audited
        assert audited[good.name] == []
        # ... and without that section the Docker socket (CV026) is all strict finds in it
        bare = pdir / "bare.yml"
        bare.write_text(f"syslog_ident: {ident}\nprofile: strict\n")
        assert [v["check"] for v in audit(daemon.host, bare)[NAME]] == ["CV026"]
        # cis asks more of it, as README.adoc says: a CPU limit, a limited restart policy (and an
        # AppArmor profile, which a host without AppArmor never gives)
        cis = pdir / "cis.yml"
        cis.write_text(f"syslog_ident: {ident}\nprofile: cis\n{NAME}:\n  docker_socket_forbidden: no\n")
        assert {v["check"] for v in audit(daemon.host, cis)[NAME]} - {"CV005"} == {"CV016", "CV018"}
        reload_and_check_config(engine_client, journal, cov, ident, pdir, policy)
    finally:
        shutil.rmtree(pdir, ignore_errors=True)


def console(cov: Any) -> str:
    """What the daemon wrote on its console (debug copies), and its state."""
    cov.reload()
    return f"--- docker logs:\n{cov.logs().decode(errors='replace')}\n--- state: {cov.attrs['State']}"


def reload_and_check_config(engine_client: docker.DockerClient, journal: JournalBed, cov: Any, ident: str,
                        pdir: Path, policy: str) -> None:
    """SIGHUP re-reads the host's policy through the directory mount; --check-config as the
    README gives it, before a (re)start."""
    (pdir / "docker-covenant.yml").write_text(policy + "mode: warn\n")
    cov.kill(signal="SIGHUP")
    journal.wait_for(ident, "", COVENANT_ACTION="reloaded")
    late = run_container(engine_client, unique("img-late"))
    journal.wait_for(ident, f"{late.name}: not stopping container (warn mode)")

    # the README's check of a policy before (re)starting the container
    mount = docker.types.Mount("/etc/docker-covenant", str(pdir), type="bind", read_only=True)
    engine_client.containers.run(IMAGE_TAG, ["--check-config"], mounts=[mount], network_mode="none",
                                 remove=True)
    (pdir / "docker-covenant.yml").write_text("profile: nonsense\n")
    with pytest.raises(docker.errors.ContainerError) as refused:
        engine_client.containers.run(IMAGE_TAG, ["--check-config"], mounts=[mount], network_mode="none",
                                     remove=True)
    assert refused.value.exit_status == 2


def audit(host: str, config: Path) -> dict[str, list[dict[str, Any]]]:
    env = {**os.environ, "DOCKER_HOST": host, "PYTHONPATH": str(REPO)}
    env.pop("DOCKER_TLS_VERIFY", None)
    argv = [sys.executable, "-m", "covenant", "audit", "--config", str(config), "--format", "json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode in (0, 1), done.stderr
    return {row["name"]: row["violations"] for row in json.loads(done.stdout)}


def test_run_line_without_policy_directory_fails_once(
        image_engine: tuple[PrivateDockerd, docker.DockerClient], engine_client: docker.DockerClient,
        journal: JournalBed) -> None:
    """No policy directory: docker run refuses with one message, no container is left to restart
    (the journal socket exists, so the policy directory is what it names)."""
    daemon, _ = image_engine
    missing = Path(tempfile.gettempdir()) / unique("covimg-no-policy")
    done = run_shell(host_specific(readme_run_line(), daemon.socket, missing), daemon.host)
    assert done.returncode != 0
    assert "bind source path does not exist" in done.stderr and str(missing) in done.stderr, done.stderr
    assert not missing.exists()  # nothing was created on the host
    time.sleep(2)
    assert engine_client.containers.list(all=True, filters={"name": NAME}) == []  # nothing to restart
