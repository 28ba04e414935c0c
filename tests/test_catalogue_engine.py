"""Each catalogue check on the real engine: a violator is stopped with its message, a
compliant twin keeps running. (What this engine cannot start -- published ports with
--bridge=none, an AppArmor profile on a host without AppArmor -- is covered by
recorded inspect JSON in test_catalogue.py.)"""

from __future__ import annotations

import subprocess
import uuid

import pytest
from harness import is_running, run_container, wait_until

BASE = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}
NNP = ["no-new-privileges"]


def cases(tmp_path, dockerd, shared_dir):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return [
        # (check, section settings, violating options, compliant options or None, message start)
        ("CV005", "apparmor_required: yes", {}, None, "no AppArmor profile"),
        ("CV006", "no_added_capabilities: yes", {"cap_add": ["NET_ADMIN"]}, {"cap_add": ["CHOWN"]},
         "capabilities added: NET_ADMIN"),
        ("CV007", "sensitive_mounts_forbidden: yes", {"volumes": {"/etc": {"bind": "/h", "mode": "rw"}}},
         {"volumes": {"/etc": {"bind": "/h", "mode": "ro"}}}, "sensitive host directory mounted read-write"),
        ("CV010", "host_network_forbidden: yes", {"network_mode": "host"}, {}, "host network namespace"),
        ("CV011", "host_pid_forbidden: yes", {"pid_mode": "host"}, {}, "host PID namespace shared"),
        ("CV012", "host_ipc_forbidden: yes", {"ipc_mode": "host"}, {}, "host IPC namespace shared"),
        ("CV013", "host_uts_forbidden: yes", {"uts_mode": "host"}, {}, "host UTS namespace shared"),
        ("CV014", "host_userns_forbidden: yes", {"userns_mode": "host"}, {}, "host user namespace shared"),
        ("CV015", "memory_limit_required: yes", {}, {"mem_limit": "64m"}, "no memory limit"),
        ("CV016", "cpu_limit_required: yes", {}, {"cpu_shares": 512}, "no CPU shares or limit"),
        ("CV017", "read_only_required: yes", {}, {"read_only": True}, "root filesystem not read-only"),
        ("CV018", "restart_policy_limited: yes", {"restart_policy": {"Name": "always"}},
         {"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3}}, "restart policy not limited"),
        ("CV019", "host_devices_forbidden: yes", {"devices": ["/dev/null:/dev/xnull:rwm"]}, {},
         "host devices exposed: /dev/null"),
        ("CV020", "shared_propagation_forbidden: yes",
         {"volumes": {str(shared_dir): {"bind": "/s", "mode": "rshared"}}},
         {"volumes": {str(shared_dir): {"bind": "/s", "mode": "rslave"}}}, "shared mount propagation: /s"),
        ("CV021", "seccomp_unconfined_forbidden: yes", {"security_opt": [*NNP, "seccomp=unconfined"]}, {},
         "seccomp unconfined"),
        ("CV022", "cgroup_parent_forbidden: yes", {"cgroup_parent": "/covtest"}, {}, "cgroup parent set"),
        ("CV023", "no_new_privileges_required: yes\n  security_opt_required: no", {"security_opt": []}, {},
         "no-new-privileges not set"),
        ("CV024", "healthcheck_required: yes", {},
         {"healthcheck": {"test": ["CMD", "true"], "interval": 60 * 10**9}}, "no health check"),
        ("CV025", "pids_limit_required: yes", {}, {"pids_limit": 100}, "no PIDs limit"),
        ("CV026", "docker_socket_forbidden: yes",
         {"volumes": {str(dockerd.socket): {"bind": "/var/run/docker.sock", "mode": "rw"}}}, {},
         "Docker socket mounted"),
        ("CV027", "non_root_required: yes", {}, {"user": "1000:1000"}, "runs as root (user unset)"),
        ("CV028", f"bind_mount_prefixes: [{tmp_path}]", {"volumes": {"/etc": {"bind": "/h", "mode": "ro"}}},
         {"volumes": {str(data): {"bind": "/d", "mode": "ro"}}}, "bind mount outside the allowed host paths"),
    ]


@pytest.fixture
def shared_dir(tmp_path):
    """A mount of our own with shared propagation (this host's / is private)."""
    path = tmp_path / "shared"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], check=True)
    subprocess.run(["mount", "--make-shared", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_every_startable_check_on_the_engine(tmp_path, dockerd, client, covenant_factory, journal,
                                            shared_dir):
    table = cases(tmp_path, dockerd, shared_dir)
    run = uuid.uuid4().hex[:6]
    policy = "debug: no\n" + "".join(f"{check.lower()}-*:\n  {settings}\n" for check, settings, *_ in table)
    policy += ("cv029-bad-*:\n  allowed_images: ['registry.example.com/*']\n"
               "cv029-ok-*:\n  allowed_images: ['covenant-test/*']\n  digests_only: no\n")
    table.append(("CV029", "", {}, {}, "image not allowed (covenant-test/busybox:1)"))
    cov = covenant_factory(policy)
    started = []
    for check, _, bad, good, text in table:
        prefix = check.lower()
        started.append((check, run_container(client, f"{prefix}-bad-{run}", **{**BASE, **bad}), text, False))
        if good is not None:
            twin = run_container(client, f"{prefix}-ok-{run}", **{**BASE, **good})
            started.append((check, twin, None, True))
    for check, container, text, compliant in started:
        if compliant:
            journal.wait_for(cov.ident, f"{container.name}: allowed")
        else:
            entry = journal.wait_for(cov.ident, f"{container.name}: {text}")
            assert entry["COVENANT_CHECK"] == check
            journal.wait_for(cov.ident, f"{container.name}: stopping container")
    for check, container, _, compliant in started:
        if compliant:
            assert is_running(container), f"{check}: compliant {container.name} was stopped"
        else:
            wait_until(lambda c=container: not is_running(c), 5, what=f"{check}: {container.name} to die")


def test_a_waived_check_is_logged_and_not_enforced(client, covenant_factory, journal):
    cov = covenant_factory("debug: no\nprofile: strict\nlean-*:\n  waive: [CV015, CV027]\n")
    options = {**BASE, "pids_limit": 50}
    waived = run_container(client, f"lean-{uuid.uuid4().hex[:6]}", **options)
    enforced = run_container(client, f"fat-{uuid.uuid4().hex[:6]}", **options)
    entry = journal.wait_for(cov.ident, f"{waived.name}: CV015 waived ({waived.name}: no memory limit)")
    assert (entry["COVENANT_ACTION"], entry["PRIORITY"]) == ("waived", "7")
    journal.wait_for(cov.ident, f"{waived.name}: CV027 waived")
    journal.wait_for(cov.ident, f"{waived.name}: allowed")
    journal.wait_for(cov.ident, f"{enforced.name}: no memory limit")
    journal.wait_for(cov.ident, f"{enforced.name}: stopping container")
    assert is_running(waived)
