"""API request rules on a real dockerd with the plugin: what they refuse did not happen,
what they do not cover still works, and each refusal has its control -- the same request
to a dockerd without the plugin does what the rule forbids."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

from harness import IMAGE, UnixHTTP, unique, wait_until
from test_operate import samples

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
SAFE = ["--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges"]
RULES = """debug: no
api_rules:
  - name: no-cp-into-db
    deny: PUT /containers/{container}/archive
    containers: ['db-*']
  - name: no-exec-into-prod
    deny: POST /containers/{container}/exec
    containers: ['prod-*']
  - name: no-volume-rm
    deny: DELETE /volumes/*
"""


def cli(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, "-H", host, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def run(host: str, name: str) -> None:
    result = cli(host, "run", "-d", *SAFE, "--name", name, IMAGE, "sleep", "300")
    assert result.returncode == 0, result.stderr


def read(host: str, name: str, path: str) -> str | None:
    """The file's content as dockerd has it (GET .../archive, which no rule here forbids)."""
    result = subprocess.run([DOCKER, "-H", host, "cp", f"{name}:{path}", "-"], capture_output=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        return None
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
        member = tar.extractfile(os.path.basename(path))
        return member.read().decode() if member else None


def tar_of(name: str, text: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def rule_count(bed, rule: str, outcome: str) -> float:
    return samples(bed[1].metrics_url).get(
        ("covenant_api_rule_decisions_total", (("outcome", outcome), ("rule", rule))), 0.0)


def test_docker_cp_into_db_is_refused_by_name_and_by_short_id(bed, plugin_policy, dockerd, tmp_path, journal):
    plugin_policy(RULES)
    guarded = bed[0].host
    src = tmp_path / "payload"
    src.write_text("planted")
    db, web = unique("db"), unique("web")
    run(guarded, db)
    run(guarded, web)
    before = rule_count(bed, "no-cp-into-db", "denied")
    refused = cli(guarded, "cp", str(src), f"{db}:/payload")
    assert refused.returncode != 0
    assert (f"[rule no-cp-into-db] PUT /containers/{db}/archive is not allowed on container {db}"
            in refused.stderr), refused.stderr
    short = cli(guarded, "inspect", "-f", "{{.Id}}", db).stdout.strip()[:12]
    status, text = bed[2].request("PUT", f"/v1.41/containers/{short}/archive?path=/",
                                  tar_of("payload", "planted"), {"Content-Type": "application/x-tar"})
    assert status == 403 and "[rule no-cp-into-db]" in text, text
    assert read(guarded, db, "/payload") is None  # nothing was written
    entry = journal.wait_for(bed[1].ident, f"{db}: denied PUT")
    assert entry["COVENANT_CHECK"] == "rule:no-cp-into-db" and entry["COVENANT_ACTION"] == "denied"
    assert rule_count(bed, "no-cp-into-db", "denied") == before + 2
    # a container the rule does not name takes the copy
    assert cli(guarded, "cp", str(src), f"{web}:/payload").returncode == 0
    assert read(guarded, web, "/payload") == "planted"
    # control: without the plugin the same copies land in db
    run(dockerd.host, db)
    assert cli(dockerd.host, "cp", str(src), f"{db}:/payload").returncode == 0
    assert read(dockerd.host, db, "/payload") == "planted"
    short = cli(dockerd.host, "inspect", "-f", "{{.Id}}", db).stdout.strip()[:12]
    status, text = UnixHTTP(dockerd.socket).request("PUT", f"/v1.41/containers/{short}/archive?path=/",
                                                    tar_of("second", "planted"),
                                                    {"Content-Type": "application/x-tar"})
    assert status == 200, text
    assert read(dockerd.host, db, "/second") == "planted"
    cli(guarded, "rm", "-f", db, web)
    cli(dockerd.host, "rm", "-f", db)


def test_docker_exec_into_prod_is_refused_and_a_rename_cannot_dodge_it(bed, plugin_policy, dockerd):
    plugin_policy(RULES)
    guarded = bed[0].host
    prod, web = unique("prod"), unique("web")
    run(guarded, prod)
    run(guarded, web)
    refused = cli(guarded, "exec", prod, "sh", "-c", "echo ran > /mark")
    assert refused.returncode != 0
    assert (f"[rule no-exec-into-prod] POST /containers/{prod}/exec is not allowed on container {prod}"
            in refused.stderr), refused.stderr
    assert read(guarded, prod, "/mark") is None  # it never ran
    assert cli(guarded, "exec", web, "sh", "-c", "echo ran > /mark").returncode == 0
    assert read(guarded, web, "/mark") == "ran\n"
    # renamed out of prod-*, the exec would be allowed: the rename is refused
    renamed = cli(guarded, "rename", prod, f"x{prod}")
    assert renamed.returncode != 0 and f"renaming {prod} to x{prod} would take it out" in renamed.stderr
    assert cli(guarded, "inspect", "-f", "{{.Name}}", prod).stdout.strip() == f"/{prod}"
    # control: without the plugin the exec runs, and the rename happens
    run(dockerd.host, prod)
    assert cli(dockerd.host, "exec", prod, "sh", "-c", "echo ran > /mark").returncode == 0
    assert read(dockerd.host, prod, "/mark") == "ran\n"
    assert cli(dockerd.host, "rename", prod, f"x{prod}").returncode == 0
    cli(guarded, "rm", "-f", prod, web)
    cli(dockerd.host, "rm", "-f", f"x{prod}")


def test_docker_volume_rm_is_refused(bed, plugin_policy, dockerd):
    plugin_policy(RULES)
    guarded = bed[0].host
    vol = unique("vol")
    for host in (guarded, dockerd.host):
        assert cli(host, "volume", "create", vol).returncode == 0
    before = rule_count(bed, "no-volume-rm", "denied")
    refused = cli(guarded, "volume", "rm", vol)
    assert refused.returncode != 0
    assert f"[rule no-volume-rm] DELETE /volumes/{vol} is not allowed" in refused.stderr, refused.stderr
    assert cli(guarded, "volume", "inspect", vol).returncode == 0  # still there
    assert rule_count(bed, "no-volume-rm", "denied") == before + 1
    # control
    assert cli(dockerd.host, "volume", "rm", vol).returncode == 0
    assert cli(dockerd.host, "volume", "inspect", vol).returncode != 0
    plugin_policy("debug: no\n")  # no rule: the guarded engine removes it too
    assert cli(guarded, "volume", "rm", vol).returncode == 0


def test_a_rule_on_users_fails_closed_without_tls(bed, plugin_policy, dockerd):
    """This dockerd has no TLS client authentication, so it passes no user: a rule that
    excepts some users cannot tell them apart and binds everyone."""
    plugin_policy("debug: no\ngroups:\n  ops: [alice]\napi_rules:\n  - name: only-ops-remove-volumes\n"
                  "    deny: DELETE /volumes/*\n    except_users: ['@ops']\n")
    guarded = bed[0].host
    vol = unique("vol")
    for host in (guarded, dockerd.host):
        assert cli(host, "volume", "create", vol).returncode == 0
    refused = cli(guarded, "volume", "rm", vol)
    assert refused.returncode != 0 and "no authenticated user" in refused.stderr, refused.stderr
    assert cli(guarded, "volume", "inspect", vol).returncode == 0
    assert cli(dockerd.host, "volume", "rm", vol).returncode == 0  # control
    plugin_policy("debug: no\n")
    assert cli(guarded, "volume", "rm", vol).returncode == 0


def test_warn_mode_lets_a_ruled_request_through_and_counts_it(bed, plugin_policy, journal):
    plugin_policy(RULES.replace("debug: no\n", "debug: no\nmode: warn\n"))
    guarded = bed[0].host
    vol = unique("vol")
    assert cli(guarded, "volume", "create", vol).returncode == 0
    before = rule_count(bed, "no-volume-rm", "warned")
    assert cli(guarded, "volume", "rm", vol).returncode == 0
    assert cli(guarded, "volume", "inspect", vol).returncode != 0
    entry = journal.wait_for(bed[1].ident, f"would deny DELETE /v1.41/volumes/{vol}")
    assert entry["COVENANT_ACTION"] == "warned" and entry["COVENANT_CHECK"] == "rule:no-volume-rm"
    wait_until(lambda: rule_count(bed, "no-volume-rm", "warned") == before + 1, 5, what="the warned count")
