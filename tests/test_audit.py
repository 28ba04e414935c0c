"""`docker-covenant audit`: the daemon's evaluator, once, as a report; live and offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import COMPLIANT, REPO, run_container, unique


def audit(tmp_path, dockerd, *args, policy="debug: no\n", stdin=None, host=None):
    config = tmp_path / "audit.yml"
    config.write_text(policy)
    env = {**os.environ, "DOCKER_HOST": host or dockerd.host, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "covenant", "audit", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, input=stdin, timeout=120, check=False)


def test_audit_reports_violators_and_stops_nothing(tmp_path, dockerd, client):
    bad = run_container(client, unique("audited"), privileged=True)
    good = run_container(client, unique("clean"), **COMPLIANT)
    result = audit(tmp_path, dockerd)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "CHECK", "CIS", "SEVERITY", "MESSAGE"]
    assert any(line.split()[:4] == [bad.name, "CV001", "5.4", "high"] and
               line.endswith(f"{bad.name}: privileged set but not allowed") for line in lines)
    assert not any(line.startswith(good.name) for line in lines)
    assert lines[-1] == "2 containers, 1 violating"
    bad.reload()
    assert bad.status == "running"  # audit stops nothing

    as_json = audit(tmp_path, dockerd, "--format", "json")
    assert as_json.returncode == 1
    report = {c["name"]: c for c in json.loads(as_json.stdout)}
    assert [v["check"] for v in report[bad.name]["violations"]] == ["CV001", "CV002", "CV003"]
    assert report[bad.name]["violations"][0] == {
        "check": "CV001", "cis": "5.4", "title": "Container must not run privileged", "severity": "high",
        "message": f"{bad.name}: privileged set but not allowed"}
    assert report[good.name]["violations"] == [] and report[good.name]["id"] == good.id


def test_audit_exit_0_when_clean_and_2_on_errors(tmp_path, dockerd, client):
    run_container(client, unique("clean"), **COMPLIANT)
    clean = audit(tmp_path, dockerd)
    assert (clean.returncode, clean.stdout) == (0, "1 containers, all compliant\n")
    bad_policy = audit(tmp_path, dockerd, policy="web:\n  privileged: 2\n")
    assert bad_policy.returncode == 2 and "audit.yml:2: web.privileged" in bad_policy.stderr
    no_engine = audit(tmp_path, dockerd, host=f"unix://{tmp_path}/nothing.sock")
    assert no_engine.returncode == 2 and "cannot reach Docker" in no_engine.stderr


def test_audit_of_saved_docker_inspect_output(tmp_path, dockerd, client):
    """The Docker CLI's own `docker inspect` output, evaluated with no engine needed."""
    bad = run_container(client, unique("saved"), cap_add=["ALL"], **COMPLIANT)
    good = run_container(client, unique("saved-ok"), **COMPLIANT)
    docker_cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    saved = subprocess.run([docker_cli, "-H", dockerd.host, "inspect", bad.id, good.id], capture_output=True,
                           text=True, check=True).stdout
    (tmp_path / "running.json").write_text(saved)
    nowhere = f"unix://{tmp_path}/nothing.sock"
    offline = audit(tmp_path, dockerd, "--inspect", str(tmp_path / "running.json"), host=nowhere)
    assert offline.returncode == 1, offline.stderr
    assert f"{bad.name}: capability ALL has been set" in offline.stdout
    from_stdin = audit(tmp_path, dockerd, "--inspect", "-", "--format", "json", stdin=saved, host=nowhere)
    assert {c["name"] for c in json.loads(from_stdin.stdout)} == {bad.name, good.name}
    garbage = audit(tmp_path, dockerd, "--inspect", "-", stdin="{not json", host=nowhere)
    assert garbage.returncode == 2 and "-:1: not JSON" in garbage.stderr


def test_audit_shows_progress_on_a_terminal(tmp_path, dockerd, client):
    for _ in range(3):
        run_container(client, unique("progress"), **COMPLIANT)
    config = tmp_path / "p.yml"
    config.write_text("debug: no\n")
    command = f"{sys.executable} -m covenant audit --config {config}"
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                            env={**os.environ, "DOCKER_HOST": dockerd.host, "PYTHONPATH": str(REPO)},
                            timeout=120, check=False)
    assert "audit: 3/3 containers" in result.stdout  # the pty carries stderr too
    piped = audit(tmp_path, dockerd)
    assert "audit:" not in piped.stderr


def test_checks_command_lists_the_catalogue():
    out = subprocess.run([sys.executable, "-m", "covenant", "checks"], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.splitlines()[0].split() == ["ID", "CIS", "SEVERITY", "KEY", "PROFILES", "TITLE"]
    assert any(line.split()[:4] == ["CV026", "5.31", "high", "docker_socket_forbidden"]
               for line in out.splitlines())


def test_audit_judges_one_source_at_a_time(tmp_path):
    """--inspect, --compose and engines each name what is judged; given two, it says so."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (tmp_path / "p.yml").write_text("debug: no\n")
    for extra in (["--inspect", "x.json", "--compose", "c.yml"], ["--compose", "c.yml", "-H", "unix:///x"],
                  ["--inspect", "-", "--context", "default"], ["--against", "p.yml", "--compose", "c.yml"]):
        argv = [sys.executable, "-m", "covenant", "audit", "--config", str(tmp_path / "p.yml"), *extra]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert result.returncode == 2 and ("cannot be combined" in result.stderr
                                           or "not --compose" in result.stderr), (extra, result.stderr)
