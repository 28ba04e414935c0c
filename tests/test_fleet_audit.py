"""``audit`` over several engines at once (issue 14): as the Docker CLI names them
(``--host``, ``--context``, TLS flags), one report with the host on every row, and an engine
that cannot be reached reported, not skipped. Real engines: the session's private dockerd,
a second one, one with TLS client verification, and a socket nobody serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import COMPLIANT, REPO, PrivateDockerd, busybox_image, run_container, unique
from tlsbed import free_port, make_certs, tls_args

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


def audit(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "policy.yml"
    config.write_text("debug: no\n")
    return subprocess.run([sys.executable, "-m", "covenant", "audit", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})})


@pytest.fixture(scope="module")
def second(engine) -> PrivateDockerd:
    d = PrivateDockerd(engine=engine)
    d.start()
    client = d.client()
    busybox_image(client)
    client.close()
    yield d
    d.stop()


def test_several_engines_one_report_and_the_unreachable_one_named(tmp_path, dockerd, client, second):
    other = second.client()
    here = run_container(client, unique("fleet-a"))  # violates: no --cap-drop, no --security-opt
    there = run_container(other, unique("fleet-b"))
    fine = run_container(other, unique("fleet-ok"), **COMPLIANT)
    gone = f"unix://{tmp_path}/nobody.sock"
    done = audit(tmp_path, "--format", "json", "-H", dockerd.host, "--host", second.host, "-H", gone)
    assert done.returncode == 2, done.stderr  # an engine could not be audited
    rows = json.loads(done.stdout)
    assert all("host" in r for r in rows)
    by_name = {(r["host"], r["name"]): r for r in rows}
    assert [v["check"] for v in by_name[(dockerd.host, here.name)]["violations"]] == ["CV002", "CV003"]
    assert [v["check"] for v in by_name[(second.host, there.name)]["violations"]] == ["CV002", "CV003"]
    assert by_name[(second.host, fine.name)]["violations"] == []
    assert (dockerd.host, there.name) not in by_name  # each container under its own engine
    [unreachable] = [r for r in rows if r["host"] == gone]
    assert unreachable["kind"] == "engine" and "cannot reach Docker" in unreachable["error"]
    table = audit(tmp_path, "-H", dockerd.host, "-H", second.host, "-H", gone)
    assert table.returncode == 2
    assert f"{gone}: not audited: cannot reach Docker" in table.stdout
    assert f"{second.host}: " in table.stdout and f"{dockerd.host}: " in table.stdout
    finding = next(line for line in table.stdout.splitlines() if there.name in line)
    assert finding.startswith(second.host)
    # without the unreachable one: exit status over the rest, 1 for the violators
    assert audit(tmp_path, "-H", dockerd.host, "-H", second.host).returncode == 1
    other.close()


def test_tls_engine_as_the_cli_reaches_it(tmp_path, engine):
    certs = make_certs(tmp_path / "tls", ("auditor",))
    port = free_port()
    d = PrivateDockerd(extra_args=tls_args(certs, port), engine=engine)
    try:
        d.start()
        client = d.client()  # its unix socket, for the test's own set-up
        busybox_image(client)
        c = run_container(client, unique("fleet-tls"))
        cert, key = certs.users["auditor"]
        host = f"tcp://127.0.0.1:{port}"
        done = audit(tmp_path, "--format", "json", "-H", host, "-H", d.host, "--tlsverify",
                     "--tlscacert", str(certs.ca), "--tlscert", str(cert), "--tlskey", str(key))
        assert done.returncode == 1, done.stderr + done.stdout
        rows = json.loads(done.stdout)
        found = {(r["host"], r["name"]) for r in rows if r["name"] == c.name}
        assert found == {(host, c.name), (d.host, c.name)}
        # control: the same engine without the client certificate is not audited
        plain = audit(tmp_path, "--format", "json", "-H", host, "-H", d.host)
        assert plain.returncode == 2
        assert any(r["host"] == host and r.get("error") for r in json.loads(plain.stdout))
        # a context that holds the certificates, as docker context create stores them
        env = {"DOCKER_CONFIG": str(tmp_path / "docker-config"), "HOME": str(tmp_path)}
        made = subprocess.run([DOCKER, "context", "create", "covtls", "--docker",
                               f"host={host},ca={certs.ca},cert={cert},key={key}"],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, **env})
        assert made.returncode == 0, made.stderr
        by_context = audit(tmp_path, "--format", "json", "--context", "covtls", env=env)
        assert by_context.returncode == 1, by_context.stderr + by_context.stdout
        assert any(r["host"] == "covtls" and r["name"] == c.name for r in json.loads(by_context.stdout))
        client.close()
    finally:
        d.stop()


def test_contexts_are_read_from_the_cli_store(tmp_path, dockerd, client):
    config = tmp_path / "docker-config"
    env = {"DOCKER_CONFIG": str(config), "HOME": str(tmp_path)}
    made = subprocess.run([DOCKER, "context", "create", "covfleet", "--docker", f"host={dockerd.host}"],
                          capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env})
    assert made.returncode == 0, made.stderr
    c = run_container(client, unique("fleet-ctx"))
    done = audit(tmp_path, "--format", "json", "--context", "covfleet", env=env)
    assert done.returncode == 1, done.stderr
    assert any(r["host"] == "covfleet" and r["name"] == c.name for r in json.loads(done.stdout))
    unknown = audit(tmp_path, "--context", "nosuch", env=env)
    assert unknown.returncode == 2 and "no Docker context 'nosuch'" in unknown.stderr
