"""Red-team attacks on the API request rules, per-user rules, quotas and the image gate
(issue 12/13 features), each against the guarded engine (dockerd + the plugin) with its
control. A test marked ``xfail(strict=True)`` asserts what should hold and documents a
bypass that is still open; the violation it shows happened on the guarded engine."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import tarfile
import threading
import time

import docker as docker_sdk
import pytest
from harness import COMPLIANT, IMAGE, unique, wait_until
from test_authz import DOCKER, docker
from test_authz_rules import SAFE, cli
from test_authz_services import managers, task_container
from test_authz_services import spec as svc_spec
from test_authz_users import CAP_SYS_ADMIN, NEVER, OWNER, PER_USER, POLICY, reload, tls_bed, users
from test_authz_walkarounds import JSON
from test_quota_engine import quota, running_with
from test_scan_engine import CLEAN, SCANS, StandIn, image

FIXTURES = (tls_bed, users, managers)  # the TLS bed's fixtures, used by name below
FLAGS = ["--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges"]


def inspect(bed, name: str) -> dict:
    out = docker(bed, "inspect", name)
    return json.loads(out.stdout)[0] if out.returncode == 0 else {}


@pytest.mark.xfail(strict=True, reason="image= sections match the reference as written (Config.Image): "
                   "another tag of the same image, its id or a digest reference escapes the section "
                   "and with it image_scan_required (CV301)")
def test_an_image_section_gate_cannot_be_escaped_by_another_reference(tmp_path, bed, plugin_policy):
    guarded = bed[0].client()
    scanner = StandIn(tmp_path)
    bad = image(guarded, "registry.example.com/red/bad:1")
    scanner.reject(bad)
    # the README's own example of the gate: sections by image reference
    plugin_policy(scanner.policy("wait").replace("scanned-*:", "image=registry.example.com/*:"))
    # control: by the reference the section names, the gate refuses it
    name = unique("red")
    refused = docker(bed, "run", "-d", *FLAGS, "--name", name, "registry.example.com/red/bad:1",
                     "sleep", "60")
    assert refused.returncode != 0 and "[CV301]" in refused.stderr, refused.stderr
    assert not inspect(bed, name).get("State", {}).get("Running")
    # the same image under another tag, by its id and by an id prefix
    assert docker(bed, "tag", "registry.example.com/red/bad:1", "innocent/app:1").returncode == 0
    ran = []
    for ref in ("innocent/app:1", bad, bad.removeprefix("sha256:")[:12]):
        other = unique("red")
        docker(bed, "run", "-d", *FLAGS, "--name", other, ref, "sleep", "60")
        state = inspect(bed, other)
        if state.get("State", {}).get("Running") and state.get("Image") == bad:
            ran.append(ref)
    docker(bed, "rmi", "innocent/app:1")
    guarded.close()
    assert ran == [], f"the rejected image {bad[:19]} ran through {ran}"


def test_a_restart_of_a_running_container_keeps_its_place_in_the_quota(bed, plugin_policy):
    """``docker restart`` of a running container stops it and starts it again: the plugin let
    it through without counting it (it was running), so a start judged in the gap between the
    stop and the start saw the group with room, and both ran: three where two are allowed."""
    plugin_policy(quota(2))
    guarded, http, team = bed[0].host, bed[2], unique("team")
    a, c, b = unique("qa"), unique("qc"), unique("qb")
    for name in (a, c):
        assert cli(guarded, "run", "-d", *SAFE, "--label", f"team={team}", "--name", name, IMAGE,
                   "sleep", "300").returncode == 0
    assert cli(guarded, "create", *SAFE, "--label", f"team={team}", "--name", b, IMAGE,
               "sleep", "300").returncode == 0
    # control: the group is full, b's start is refused
    status, text = http.request("POST", f"/v1.41/containers/{b}/start")
    assert status == 403 and "[quota per-team]" in text, text
    stop = threading.Event()
    started: list[int] = []

    def keep_starting() -> None:
        while not stop.is_set():
            status, _ = http.request("POST", f"/v1.41/containers/{b}/start")
            if status == 204:
                started.append(status)
                return

    worker = threading.Thread(target=keep_starting)
    worker.start()
    try:
        for _ in range(10):
            assert cli(guarded, "restart", "-t", "0", c).returncode == 0
            if started:
                break
    finally:
        stop.set()
        worker.join()
    running = running_with(guarded, f"team={team}")
    cli(guarded, "rm", "-f", a, b, c)
    assert len(running) <= 2, f"{len(running)} containers of {team} running, quota 2 (b started: {started})"


TEAM_RULE = """debug: no
groups:
  ops: [alice]
user=@ops:
  privileged: yes
api_rules:
  - name: bob-starts-only-his-team
    deny: POST /containers/{container}/start
    users: [bob]
    except_containers: ['label=team=bob']
"""
TEAM_RULES = TEAM_RULE + """  - name: bob-restarts-only-his-team
    deny: POST /containers/{container}/restart
    users: [bob]
    except_containers: ['label=team=bob']
"""


def test_bob_cannot_start_a_team_alice_container_by_restarting_it(tls_bed, users, journal):
    """``docker restart`` of a stopped container starts it: a rule on ``/start`` alone (the
    README's example) let bob run alice's container; with the restart rule too, it holds."""
    reload(tls_bed, journal, TEAM_RULE)
    theirs = unique("alice")
    users["alice"].containers.create(IMAGE, ["sleep", "300"], name=theirs, labels={"team": "alice"},
                                     network_mode="none", **COMPLIANT)
    with pytest.raises(docker_sdk.errors.APIError):
        users["bob"].api.start(theirs)  # control: the rule refuses bob's start
    assert users[""].api.inspect_container(theirs)["State"]["StartedAt"] == NEVER
    users["bob"].api.restart(theirs)  # the README's one rule: the restart starts it for bob
    assert users[""].api.inspect_container(theirs)["State"]["Running"]
    users[""].api.stop(theirs, timeout=0)
    reload(tls_bed, journal, TEAM_RULES)
    with pytest.raises(docker_sdk.errors.APIError) as refused:
        users["bob"].api.restart(theirs)
    assert "[rule bob-restarts-only-his-team]" in str(refused.value)
    assert not users[""].api.inspect_container(theirs)["State"]["Running"]
    users["alice"].api.restart(theirs)  # the rules bind bob only
    assert users[""].api.inspect_container(theirs)["State"]["Running"]
    reload(tls_bed, journal, POLICY)


def test_an_exec_alice_may_run_privileged_cannot_be_started_by_bob(tls_bed, users):
    """An exec is judged at its start for whoever starts it: alice (ops) creates a privileged
    exec, bob starts it by its id -- refused, and it never ran; alice starts it."""
    name = unique("target")
    users["alice"].containers.run(IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none",
                                  **COMPLIANT)
    exec_id = users["alice"].api.exec_create(name, ["sh", "-c", "grep CapEff /proc/self/status > /mark"],
                                             privileged=True)["Id"]
    with pytest.raises(docker_sdk.errors.APIError) as refused:
        users["bob"].api.exec_start(exec_id)
    assert "[CV001]" in str(refused.value) and refused.value.status_code == 403
    assert users[""].api.exec_inspect(exec_id)["Pid"] == 0  # never ran
    users["alice"].api.exec_start(exec_id)
    marked = users[""].containers.get(name).exec_run(["cat", "/mark"]).output.decode()
    assert int(marked.split()[1], 16) & CAP_SYS_ADMIN  # control: as alice it ran privileged


ALPINE = SCANS / "trivy-alpine-39-high-critical.json"
ALPINE_ID = "sha256:055936d3920576da37aa9bc460d70c5f212028bda1c08c0879aedf03d7a66ea1"  # its Metadata.ImageID


def test_a_scan_by_reference_cannot_pass_an_image_the_tag_no_longer_names(tmp_path, bed, plugin_policy):
    """A scanner run with ``{ref}`` scans whatever the tag names when it runs, and the verdict
    is kept for the image id the container has: a tag re-pointed to a clean image while the
    scan of a rejected one waited made the rejected image's id pass, and it ran. The report
    must now be of the image id (Trivy's Metadata.ImageID): a report of another is a failed
    scan."""
    guarded = bed[0].client()
    scanner = StandIn(tmp_path)
    # a scanner that takes the reference (as trivy image REF does): it looks the image up when it
    # runs (after its start-up, 3 s here), and judges what it finds
    scanner.path.write_text(
        f"#!/bin/sh\nsleep 3\nid=$({DOCKER} -H {bed[0].host} image inspect -f '{{{{.Id}}}}' \"$1\")\n"
        f"echo \"$id\" >> {scanner.calls}\n"
        f"if grep -qx \"$id\" {scanner.rejected}; then sed \"s/{ALPINE_ID}/$id/\" {ALPINE}; "
        f"else echo '{CLEAN[:-1]}, \"Metadata\": {{\"ImageID\": \"'$id'\"}}}}'; fi\n")
    bad, bad2 = image(guarded, "covenant-test/red-bad:1"), image(guarded, "covenant-test/red-bad2:1")
    good = image(guarded, "covenant-test/red-good:1")
    scanner.reject(bad)
    scanner.reject(bad2)
    plugin_policy(scanner.policy("deny").replace("'{image}'", "'{ref}'"))
    # control: by a reference that keeps naming it, the rejected image is refused once scanned
    name = unique("scanned")
    assert docker(bed, "create", *FLAGS, "--name", name, "covenant-test/red-bad2:1", "sleep", "60").returncode
    wait_until(lambda: bad2 in scanner.scanned(), 20, what="the control's scan")
    refused = docker(bed, "run", "-d", *FLAGS, "--name", name, "covenant-test/red-bad2:1", "sleep", "60")
    assert refused.returncode != 0 and "2 finding(s)" in refused.stderr, refused.stderr
    # the attack: app:1 names the bad image at create (refused: not scanned yet, the scan starts) ...
    assert docker(bed, "tag", "covenant-test/red-bad:1", "red-app:1").returncode == 0
    name = unique("scanned")
    first = docker(bed, "run", "-d", *FLAGS, "--name", name, "red-app:1", "sleep", "60")
    assert first.returncode != 0 and "not scanned yet" in first.stderr, first.stderr
    # ... and the clean one while the scanner starts up; back to the bad one once it passed
    assert docker(bed, "tag", "covenant-test/red-good:1", "red-app:1").returncode == 0
    wait_until(lambda: good in scanner.scanned(), 20, what="the scan")
    assert docker(bed, "tag", "covenant-test/red-bad:1", "red-app:1").returncode == 0
    for _ in range(20):  # until the verdict is in (the scanner logs before it reports)
        docker(bed, "rm", "-f", name)
        again = docker(bed, "run", "-d", *FLAGS, "--name", name, "red-app:1", "sleep", "60")
        if "not scanned yet" not in again.stderr:
            break
        time.sleep(0.5)
    assert again.returncode != 0 and f"a scan of 'red-app:1' reported image {good[:19]}" in again.stderr, \
        again.stderr
    state = inspect(bed, name)
    docker(bed, "rm", "-f", name)
    docker(bed, "rmi", "red-app:1")
    guarded.close()
    assert not (state.get("State", {}).get("Running") and state.get("Image") == bad), \
        f"{name} runs the rejected image {bad[:19]}"


COPY_OUT_RULE = """debug: no
api_rules:
  - name: no-cp-out-of-db
    deny: GET /containers/{container}/archive
    containers: ['db-*']
"""
EXPORT_RULES = COPY_OUT_RULE + """  - name: no-export-of-db
    deny: GET /containers/{container}/export
    containers: ['db-*']
  - name: no-commit
    deny: POST /commit
"""


def secret_of(host: str, *args: str) -> str:
    """What ``docker export`` (a tar on stdout) holds at /secret, or ""."""
    result = subprocess.run([DOCKER, "-H", host, *args], capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        return ""
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
        member = tar.extractfile("secret")
        return member.read().decode() if member else ""


def test_a_copy_out_rule_also_needs_export_and_commit_closed(bed, plugin_policy):
    """A rule refuses an endpoint: ``docker cp db:/secret -`` is ``GET .../archive``, but
    ``docker export`` (``GET .../export``) and ``docker commit`` (``POST /commit?container=``,
    whose container is in the query, out of a rule's reach) read the same files. The README
    lists them; with rules on both, nothing reads it."""
    plugin_policy(COPY_OUT_RULE)
    guarded, db = bed[0].host, unique("db")
    assert cli(guarded, "run", "-d", *SAFE, "--name", db, IMAGE, "sh", "-c",
               "echo s3cret > /secret; sleep 300").returncode == 0
    wait_until(lambda: cli(guarded, "exec", db, "cat", "/secret").stdout == "s3cret\n", 10, what="the secret")
    refused = cli(guarded, "cp", f"{db}:/secret", "-")
    assert refused.returncode != 0 and "[rule no-cp-out-of-db]" in refused.stderr, refused.stderr
    assert secret_of(guarded, "export", db) == "s3cret\n"  # the rule's second endpoint
    tag = f"red-commit-{db}:1"
    assert cli(guarded, "commit", db, tag).returncode == 0
    assert cli(guarded, "run", "--rm", *SAFE, tag, "cat", "/secret").stdout == "s3cret\n"
    cli(guarded, "rmi", "-f", tag)
    plugin_policy(EXPORT_RULES)
    assert secret_of(guarded, "export", db) == ""
    assert "[rule no-export-of-db]" in cli(guarded, "export", db).stderr
    committed = cli(guarded, "commit", db, tag)
    assert committed.returncode != 0 and "[rule no-commit]" in committed.stderr, committed.stderr
    cli(guarded, "rm", "-f", db)


EXEC_RULE = """debug: no
api_rules:
  - name: no-exec-into-prod
    deny: POST /containers/{container}/exec
    containers: ['prod-*']
"""
EXEC_RULES = EXEC_RULE + """  - name: no-exec-start-in-prod
    deny: POST /exec/{exec}/start
    containers: ['prod-*']
"""


def test_an_exec_made_before_a_rename_into_prod_runs_there_unless_exec_start_is_ruled(bed, plugin_policy):
    """The README's rule on ``POST /containers/{container}/exec`` judges the exec's create:
    an exec created while the container had another name (a deploy that renames
    ``prod-web-new`` to ``prod-web`` is one such; so is one created before the rule was
    loaded) starts by its id, ``POST /exec/{id}/start``, which that rule does not name. A
    rule on the exec start, by its container, closes it."""
    guarded, client = bed[0].host, bed[0].client()
    stage = unique("stage")
    prod = stage.replace("stage", "prod")
    for policy, runs in ((EXEC_RULE, True), (EXEC_RULES, False)):
        plugin_policy(policy)
        assert cli(guarded, "run", "-d", *SAFE, "--name", stage, IMAGE, "sleep", "300").returncode == 0
        exec_id = client.api.exec_create(stage, ["sh", "-c", "echo ran > /mark"])["Id"]
        assert cli(guarded, "rename", stage, prod).returncode == 0  # into the rule's containers: allowed
        refused = cli(guarded, "exec", prod, "true")  # control: an exec create in prod is refused
        assert refused.returncode != 0 and "[rule no-exec-into-prod]" in refused.stderr, refused.stderr
        if runs:
            client.api.exec_start(exec_id)
        else:
            with pytest.raises(docker_sdk.errors.APIError) as denied:
                client.api.exec_start(exec_id)
            assert "[rule no-exec-start-in-prod]" in str(denied.value)
        mark = cli(guarded, "cp", f"{prod}:/mark", "-")
        assert (mark.returncode == 0) is runs, mark.stderr
        cli(guarded, "rm", "-f", prod)
    client.close()


def test_a_service_task_never_runs_an_image_the_scanner_rejects(tmp_path, bed, managers, plugin_policy):
    """A service was judged on the image its reference named at create, but swarm makes each
    task container from the reference afresh, without the plugin: a tag re-pointed to a
    rejected image ran in the next task. Under image_scan_required a service must name its
    image by id or digest (the CLI pins a registry image by digest itself)."""
    guarded = managers[0]
    scanner = StandIn(tmp_path)
    good, bad = image(guarded.client, "red-svc:1"), image(guarded.client, "covenant-test/red-svc-bad:1")
    scanner.reject(bad)
    plugin_policy(scanner.policy("deny") + "  security_opt_required: no\n")
    name = unique("scanned")
    body = svc_spec(name, Image="red-svc:1", CapabilityDrop=["ALL"])
    body["TaskTemplate"]["RestartPolicy"] = {"Condition": "any", "Delay": 0}
    # by a tag, which swarm reads afresh for each task: refused
    status, text = guarded.http.request("POST", "/v1.41/services/create", json.dumps(body).encode(), JSON)
    assert status == 403 and f"{name}: image red-svc:1 not pinned" in text, text
    body["TaskTemplate"]["ContainerSpec"]["Image"] = good  # pinned by its id
    for _ in range(20):  # refused while not scanned yet (unscanned: deny), then allowed
        status, text = guarded.http.request("POST", "/v1.41/services/create", json.dumps(body).encode(), JSON)
        if status == 201:
            break
        assert "not scanned yet" in text, text
        time.sleep(0.5)
    assert status == 201, text
    first = task_container(guarded.client, name, timeout=30)
    assert first["Image"] == good
    # control: the rejected image is refused to a container of that name
    refused = docker(bed, "run", "-d", *FLAGS, "--name", unique("scanned"), "covenant-test/red-svc-bad:1",
                     "sleep", "60")
    assert refused.returncode != 0 and "[CV301]" in refused.stderr, refused.stderr
    # the tag now names the rejected image; the task's container ends, swarm makes the next
    assert docker(bed, "tag", "covenant-test/red-svc-bad:1", "red-svc:1").returncode == 0
    guarded.client.api.kill(first["Id"])
    try:
        wait_until(lambda: (task_container(guarded.client, name) or {}).get("Id") not in (None, first["Id"]),
                   30, 0.2, "the next task")
        second = task_container(guarded.client, name) or {}
    finally:
        guarded.client.services.get(name).remove()
    assert second.get("Image") == good, f"the task {second.get('Name')} runs {second.get('Image')}"


def test_bob_cannot_spend_alices_per_user_quota_by_starting_her_container(tls_bed, users, journal):
    """Under a per-user quota a container counts for the user its label names. bob could
    start alice's (created, not running) container: it ran on her count, past his own, and
    her next start was refused. A start by a user of another's container is refused."""
    reload(tls_bed, journal, PER_USER)
    try:
        mine = unique("bob")
        users["bob"].containers.run(IMAGE, ["sleep", "300"], name=mine, labels={OWNER: "bob"}, detach=True,
                                    network_mode="none", **COMPLIANT)
        hers = unique("alice")
        users["alice"].containers.create(IMAGE, ["sleep", "300"], name=hers, labels={OWNER: "alice"},
                                         network_mode="none", **COMPLIANT)
        with pytest.raises(docker_sdk.errors.APIError) as refused:  # control: his own count is full
            users["bob"].containers.run(IMAGE, ["sleep", "300"], name=unique("bob"), labels={OWNER: "bob"},
                                        detach=True, network_mode="none", **COMPLIANT)
        assert "1 containers of user bob already running" in str(refused.value)
        with pytest.raises(docker_sdk.errors.APIError) as refused:
            users["bob"].api.start(hers)
        assert f"a container of alice ({OWNER}=alice) is started by alice only" in str(refused.value)
        assert not users[""].api.inspect_container(hers)["State"]["Running"]
        users["alice"].api.start(hers)  # her own start, on her count
        assert users[""].api.inspect_container(hers)["State"]["Running"]
        users[""].api.stop(hers, timeout=0)
        with pytest.raises(docker_sdk.errors.APIError) as refused:  # a restart is a start too
            users["bob"].api.restart(hers)
        assert "is started by alice only" in str(refused.value)
        assert not users[""].api.inspect_container(hers)["State"]["Running"]
    finally:
        reload(tls_bed, journal, POLICY)


def test_a_gate_on_every_container_holds_against_another_reference(tmp_path, bed, plugin_policy):
    """The README's way around image= sections: require the scan of every container."""
    guarded = bed[0].client()
    scanner = StandIn(tmp_path)
    bad = image(guarded, "registry.example.com/red/every:1")
    scanner.reject(bad)
    plugin_policy(scanner.policy("wait").replace("scanned-*:", "'*':"))
    assert docker(bed, "tag", "registry.example.com/red/every:1", "innocent/every:1").returncode == 0
    refs = ("registry.example.com/red/every:1", "innocent/every:1", bad, bad.removeprefix("sha256:")[:12])
    for ref in refs:
        name = unique("red")
        for _ in range(10):  # the first may find the scan still running (unscanned: wait, 2 s)
            refused = docker(bed, "run", "-d", *FLAGS, "--name", name, ref, "sleep", "60")
            if "not scanned yet" not in refused.stderr:
                break
            docker(bed, "rm", "-f", name)
        assert refused.returncode != 0 and "[CV301]" in refused.stderr, (ref, refused.stderr)
        assert not inspect(bed, name).get("State", {}).get("Running")
    docker(bed, "rmi", "innocent/every:1")
    guarded.close()


ATTACH_RULES = EXEC_RULES + """  - name: no-attach-to-prod
    deny: POST /containers/{container}/attach
    containers: ['prod-*']
"""


def attach_and_type(sock_path: str, name: str, line: bytes) -> int:
    """``docker attach`` as the API does it: POST .../attach (hijacked), then type a line."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(f"POST /v1.41/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                  "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        head = s.recv(4096)
        status = int(head.split()[1])
        if status == 101:
            s.sendall(line)
            time.sleep(1)
        return status


def test_a_rule_on_exec_leaves_attach_to_a_shell_open_unless_ruled(bed, plugin_policy):
    """A container whose main process is a shell reading its stdin (``docker run -i ...
    sh``) takes commands through ``docker attach`` (``POST .../attach``) as through an
    exec: a rule against exec does not close it; a rule on attach does."""
    guarded, sock = bed[0].host, str(bed[0].socket)
    for policy, runs in ((EXEC_RULES, True), (ATTACH_RULES, False)):
        plugin_policy(policy)
        prod = unique("prod")
        assert cli(guarded, "run", "-d", "-i", *SAFE, "--name", prod, IMAGE, "sh").returncode == 0
        refused = cli(guarded, "exec", prod, "true")  # control: exec is refused
        assert refused.returncode != 0 and "[rule no-exec-into-prod]" in refused.stderr, refused.stderr
        status = attach_and_type(sock, prod, b"echo ran > /mark\n")
        assert (status == 101) is runs, status
        mark = cli(guarded, "cp", f"{prod}:/mark", "-")
        assert (mark.returncode == 0) is runs, mark.stderr
        cli(guarded, "rm", "-f", prod)
