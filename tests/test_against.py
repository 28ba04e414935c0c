"""`docker-covenant audit --config NEW --against OLD` on the private dockerd: what a policy
change would newly stop and newly allow among the running containers; it stops nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import COMPLIANT, REPO, is_running, run_container, unique

OLD = "debug: no\nlegacy-*:\n  privileged: yes\n  cap_drop_required: no\n  security_opt_required: no\n"
NEW = "debug: no\n'*':\n  memory_limit_required: yes\nloose-*:\n  security_opt_required: no\n"


def against(tmp_path, dockerd, new, old, *args):
    env = {**os.environ, "DOCKER_HOST": dockerd.host, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "covenant", "audit", "--config", str(new), "--against", str(old), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_against_lists_what_the_change_would_newly_stop_and_allow(tmp_path, dockerd, client):
    (tmp_path / "old.yml").write_text(OLD)
    (tmp_path / "new.yml").write_text(NEW)
    limited = {"mem_limit": "64m"}
    same = run_container(client, unique("app"), **COMPLIANT, **limited)
    nomem = run_container(client, unique("nomem"), **COMPLIANT)
    legacy = run_container(client, unique("legacy"), privileged=True, **limited)
    loose = run_container(client, unique("loose"), cap_drop=["ALL"], **limited)
    bad = run_container(client, unique("bad"))
    new, old = tmp_path / "new.yml", tmp_path / "old.yml"

    result = against(tmp_path, dockerd, new, old)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    stop = lines[lines.index("would newly stop:") + 1:lines.index("would newly allow:")]
    assert sorted(stop) == sorted([
        f"  {nomem.name}: +CV015 ({nomem.name}: no memory limit)",
        f"  {legacy.name}: +CV001 ({legacy.name}: privileged set but not allowed); "
        f"+CV002 ({legacy.name}: all capabilities not dropped); "
        f"+CV003 ({legacy.name}: no security options has been set)"])
    assert lines[0] == f"{new} against {old}:"
    assert lines[lines.index("would newly allow:") + 1] == \
        f"  {loose.name}: -CV003 ({loose.name}: no security options has been set)"
    assert lines[lines.index("flagged differently (stopped under both):") + 1] == \
        f"  {bad.name}: +CV015 ({bad.name}: no memory limit)"
    assert lines[-1] == "5 containers: 2 newly stopped, 1 newly allowed, 1 flagged differently"
    assert same.name not in result.stdout
    assert all(is_running(c) for c in (same, nomem, legacy, loose, bad))  # it stops nothing

    as_json = against(tmp_path, dockerd, new, old, "--format", "json")
    assert as_json.returncode == 1
    rows = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert {n: r["change"] for n, r in rows.items()} == {
        same.name: "same", nomem.name: "newly-stopped", legacy.name: "newly-stopped",
        loose.name: "newly-allowed", bad.name: "changed"}
    assert rows[legacy.name]["old"] == [] and rows[legacy.name]["new"] == ["CV001", "CV002", "CV003"]
    assert rows[loose.name]["cleared"] == [{"check": "CV003",
                                            "message": f"{loose.name}: no security options has been set"}]
    assert rows[nomem.name]["id"] == nomem.id

    # the other way round: the old policy would newly stop loose-*, and allow the others
    back = against(tmp_path, dockerd, old, new)
    assert back.returncode == 1
    back_lines = back.stdout.splitlines()
    assert back_lines[1:3] == ["would newly stop:", f"  {loose.name}: +CV003 ({loose.name}: no security "
                                                   "options has been set)"]
    assert back_lines[-1] == "5 containers: 1 newly stopped, 2 newly allowed, 1 flagged differently"

    # no change: exit 0
    unchanged = against(tmp_path, dockerd, new, new)
    assert (unchanged.returncode, unchanged.stdout.splitlines()[-1]) == (
        0, "5 containers: 0 newly stopped, 0 newly allowed, 0 flagged differently")


def test_against_errors_exit_2_and_saved_inspect_needs_no_engine(tmp_path, dockerd):
    (tmp_path / "new.yml").write_text(NEW)
    (tmp_path / "broken.yml").write_text("web:\n  privileged: maybe\n")
    broken = against(tmp_path, dockerd, tmp_path / "new.yml", tmp_path / "broken.yml")
    assert broken.returncode == 2
    assert f"--against: {tmp_path}/broken.yml:2: web.privileged" in broken.stderr
    missing = against(tmp_path, dockerd, tmp_path / "new.yml", tmp_path / "nothere.yml")
    assert missing.returncode == 2 and "cannot read policy file" in missing.stderr

    saved = json.dumps([{"Name": "/web", "Config": {"Image": "x"}, "HostConfig": {"CapDrop": ["ALL"],
                        "SecurityOpt": ["no-new-privileges"]}}])
    (tmp_path / "old.yml").write_text(OLD)
    env_less = subprocess.run(
        [sys.executable, "-m", "covenant", "audit", "--config", str(tmp_path / "new.yml"), "--against",
         str(tmp_path / "old.yml"), "--inspect", "-"], input=saved, capture_output=True, text=True,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock", "PYTHONPATH": str(REPO)},
        timeout=60, check=False)
    assert env_less.returncode == 1, env_less.stderr
    assert "  web: +CV015 (web: no memory limit)" in env_less.stdout
    nowhere = subprocess.run(
        [sys.executable, "-m", "covenant", "audit", "--config", str(tmp_path / "new.yml"), "--against",
         str(tmp_path / "old.yml")], capture_output=True, text=True,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock", "PYTHONPATH": str(REPO)},
        timeout=60, check=False)
    assert nowhere.returncode == 2 and "cannot reach Docker" in nowhere.stderr
