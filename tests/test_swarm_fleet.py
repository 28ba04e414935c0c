"""docker-covenant on a fleet: README.adoc's ``docker service create`` line (a global
service, the policy a Swarm config) and its stack file run as they stand on a three-node
swarm of private dockerds (20.10, then 26), each in a network namespace of its own
(``swarmbed.py``), with the project's image built once from its Dockerfile and ``docker
load``-ed into every node.

Only the host's paths change in the README's lines: the Docker socket (every node sees its
own socket at one path, ``Swarmbed.node_socket``) and the policy file. What ran is read
from the engines (``docker inspect``): a violator's State, the service's tasks, the
covenant containers' ids and health.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import ENGINES
from harness import IMAGE, REPO, unique, wait_until
from swarmbed import Node, Swarmbed, covenant_image_tar, swarmbed
from test_image import docker_cli

TAG = "docker-covenant"
SERVICE = "docker-covenant"
POLICY_TARGET = "/etc/docker-covenant/docker-covenant.yml"
SELF_SECTION = (f"label=com.docker.swarm.service.name={SERVICE}:\n"
                "  security_opt_required: no\n  no_new_privileges_required: no\n"
                "  docker_socket_forbidden: no\n")
# the probe of what services accept (no security option on 20.10)
PROBE_SECTION = "nnp-probe*:\n  security_opt_required: no\n"


def readme_block(name: str) -> str:
    """The shell lines between ``// NAME: begin`` and ``// NAME: end``, continuations joined."""
    text = (REPO / "README.adoc").read_text(encoding="utf-8")
    block = text.split(f"// {name}: begin", 1)[1].split(f"// {name}: end", 1)[0]
    return block.split("----\n")[1].replace("\\\n", " ")


def host_specific(lines: str, bed: Swarmbed, policy: Path) -> str:
    """Only the host's paths change: the Docker socket (read for its group on the manager;
    mounted from each node's own) and the policy file the config is made from."""
    for old, new in (("stat -c %g /var/run/docker.sock", f"stat -c %g {bed.manager.run_dir / 'docker.sock'}"),
                     ("source=/var/run/docker.sock,", f"source={bed.node_socket},"),
                     (f" {POLICY_TARGET}\n", f" {policy}\n")):
        if old in lines:
            assert lines.count(old) == 1, (old, lines)
            lines = lines.replace(old, new)
    assert str(policy) in lines and "source=/var/run/docker.sock" not in lines, lines
    return lines


def shell(lines: str, host: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cli = docker_cli()
    env = {**os.environ, "DOCKER_HOST": host, "PATH": f"{Path(cli).parent}:{os.environ.get('PATH', '')}"}
    for var in ("DOCKER_TLS_VERIFY", "DOCKER_CONTEXT", "DOCKER_CONFIG"):
        env.pop(var, None)
    return subprocess.run(["bash", "-ec", lines], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def policy_file(text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="covfleet-", suffix=".yml")
    os.close(fd)
    path = Path(name)
    path.write_text(text)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module", params=ENGINES, ids=[f"dockerd-{v}" for v in ENGINES])
def fleet(request: pytest.FixtureRequest) -> Iterator[Swarmbed]:
    tar = covenant_image_tar(TAG)
    bed = swarmbed(request.param)
    try:
        began = time.monotonic()
        bed.load_image(tar)
        bed.busybox_everywhere()
        print(f"\nfleet: image loaded on {len(bed.nodes)} nodes in {time.monotonic() - began:.1f} s")
        yield bed
    finally:
        bed.stop()


def covenant_containers(node: Node, name: str = SERVICE) -> list[Any]:
    c = node.client()
    try:
        found = c.containers.list(filters={"label": f"com.docker.swarm.service.name={name}"})
        for x in found:
            x.reload()
        return found
    finally:
        c.close()


def healthy_guard(node: Node, name: str = SERVICE) -> str | None:
    """The id of the node's covenant task container if exactly one runs and is healthy."""
    running = [x for x in covenant_containers(node, name) if x.attrs["State"]["Running"]]
    if len(running) == 1 and running[0].attrs["State"].get("Health", {}).get("Status") == "healthy":
        return str(running[0].id)
    return None


def start(node: Node, name: str, **kwargs: Any) -> Any:
    c = node.client()
    try:
        return c.containers.run(IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none",
                                **kwargs)
    finally:
        c.close()


def state(node: Node, name: str) -> dict[str, Any]:
    c = node.client()
    try:
        return dict(c.api.inspect_container(name)["State"])
    finally:
        c.close()


def remove(node: Node, name: str) -> None:
    c = node.client()
    try:
        c.api.remove_container(name, force=True)
    finally:
        c.close()


def dies(node: Node, name: str, timeout: float = 30) -> dict[str, Any]:
    return wait_until(lambda: (s := state(node, name)) and not s["Running"] and s, timeout, 0.2,
                      f"{name} on {node.name} to be stopped")


def runs_for(node: Node, name: str, seconds: float) -> None:
    time.sleep(seconds)
    s = state(node, name)
    assert s["Running"], (node.name, name, s)


def service(bed: Swarmbed, name: str = SERVICE) -> dict[str, Any]:
    c = bed.manager.client()
    try:
        return dict(c.api.inspect_service(name))
    finally:
        c.close()


def policy_in_spec(bed: Swarmbed, name: str = SERVICE) -> str:
    configs = service(bed, name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"]
    assert len(configs) == 1 and configs[0]["File"]["Name"] == POLICY_TARGET, configs
    return str(configs[0]["ConfigName"])


@pytest.fixture(scope="module")
def deployed(fleet: Swarmbed) -> Iterator[dict[str, Any]]:
    """Controls first (a privileged container runs on every node without the service), then
    the README's lines: the policy config and the global service, healthy on every node."""
    ident = unique("covfleet")
    # debug off: the decisions reach the task's stderr only because there is no journal in it
    policy = policy_file(f"syslog_ident: {ident}\ndebug: no\n{SELF_SECTION}{PROBE_SECTION}")
    controls = {}
    for node in fleet.nodes:
        name = unique(f"control-{node.name}")
        start(node, name, privileged=True)
        controls[node.name] = name
    for node in fleet.nodes:
        runs_for(node, controls[node.name], 0)
    time.sleep(3)
    for node in fleet.nodes:
        s = state(node, controls[node.name])
        assert s["Running"], s
        remove(node, controls[node.name])
    began = time.monotonic()
    done = shell(host_specific(readme_block("swarm-service"), fleet, policy), fleet.manager.host)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    guards = wait_until(lambda: all(ids := [healthy_guard(n) for n in fleet.nodes]) and ids, 120, 1,
                        "a healthy covenant task on every node")
    print(f"\nfleet: service healthy on every node {time.monotonic() - began:.1f} s after "
          "docker service create")
    yield {"ident": ident, "policy": policy, "guards": dict(zip([n.name for n in fleet.nodes], guards))}
    policy.unlink(missing_ok=True)


def test_global_service_runs_one_task_per_node(fleet: Swarmbed, deployed: dict[str, Any]) -> None:
    spec = service(fleet)["Spec"]
    assert "Global" in spec["Mode"]
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert container["CapabilityDrop"] == ["ALL"] and container["ReadOnly"] is True
    assert policy_in_spec(fleet) == "docker-covenant-policy-1"
    c = fleet.manager.client()
    try:
        tasks = c.api.tasks(filters={"service": SERVICE, "desired-state": "running"})
    finally:
        c.close()
    assert sorted(t["NodeID"] for t in tasks) == sorted(n.node_id for n in fleet.nodes)
    for node in fleet.nodes:
        (guard,) = covenant_containers(node)
        attrs = guard.attrs
        assert attrs["Config"]["User"] == "10001:10001"
        assert attrs["HostConfig"]["CapDrop"] == ["ALL"] and attrs["HostConfig"]["ReadonlyRootfs"]
        assert attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024 and attrs["HostConfig"]["PidsLimit"] == 64
        gid = str((fleet.manager.run_dir / "docker.sock").stat().st_gid)
        assert attrs["HostConfig"]["GroupAdd"] == [gid]
        # what a service cannot carry on API 1.41: no security options (README says so)
        assert not attrs["HostConfig"].get("SecurityOpt")
        # the task reads the policy from the config, and sees its own node's engine
        out = guard.exec_run(["python", "-c", "import os,docker;print(open('" + POLICY_TARGET +
                              "').read().count('syslog_ident'), docker.from_env().info()['Name'])"])
        assert out.exit_code == 0, out.output
        assert out.output.decode().split() == ["1", node.name]


def test_no_new_privileges_is_not_available_to_services(fleet: Swarmbed, deployed: dict[str, Any]) -> None:
    """What README.adoc says of it: the CLI has no --security-opt for services; dockerd 20.10
    drops Privileges.NoNewPrivileges from a spec sent through the API, dockerd 26 keeps it and
    its task runs with the bit set (CapabilityDrop, from API 1.41 on, both keep)."""
    helped = subprocess.run([docker_cli(), "service", "create", "--help"], capture_output=True, text=True,
                            check=True).stdout
    assert "--cap-drop" in helped and "--security-opt" not in helped
    c = fleet.manager.client()
    name = unique("nnp-probe")
    try:
        c.api.create_service({"ContainerSpec": {"Image": IMAGE, "Command": ["sleep", "300"],
                                                "CapabilityDrop": ["ALL"],
                                                "Privileges": {"NoNewPrivileges": True}},
                              "Placement": {"Constraints": [f"node.id=={fleet.manager.node_id}"]}},
                             name=name, mode={"Replicated": {"Replicas": 1}})
        spec = c.api.inspect_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]
        label = f"com.docker.swarm.service.name={name}"
        task = wait_until(lambda: c.containers.list(filters={"label": label}), 60, 0.5, "the probe's task")[0]
        task.reload()
        status = task.exec_run(["cat", "/proc/1/status"]).output.decode()
        nnp = next(line.split()[1] for line in status.splitlines() if line.startswith("NoNewPrivs:"))
        opts = task.attrs["HostConfig"].get("SecurityOpt") or []
    finally:
        c.api.remove_service(name)
        c.close()
    assert spec["CapabilityDrop"] == ["ALL"]
    if fleet.engine.version == "20.10":
        assert "NoNewPrivileges" not in (spec.get("Privileges") or {}), spec
        assert (nnp, opts) == ("0", [])
    else:
        assert spec["Privileges"]["NoNewPrivileges"] is True
        assert (nnp, opts) == ("1", ["no-new-privileges=true"])


def test_a_violator_dies_on_every_node(fleet: Swarmbed, deployed: dict[str, Any]) -> None:
    names = {}
    for node in fleet.nodes:
        names[node.name] = unique(f"violator-{node.name}")
        start(node, names[node.name], privileged=True)
    for node in fleet.nodes:
        s = dies(node, names[node.name])
        assert s["ExitCode"] == 137, s  # killed
        c = node.client()
        try:
            assert c.api.inspect_container(names[node.name])["HostConfig"]["Privileged"] is True
        finally:
            c.close()
        remove(node, names[node.name])
    for node in fleet.nodes:
        assert healthy_guard(node) == deployed["guards"][node.name]  # never stopped itself
        # no journal socket in the task: its decisions are in docker (service) logs
        (guard,) = covenant_containers(node)
        assert f"{names[node.name]}: stopping container" in guard.logs().decode(errors="replace")


def allowed_now_and_violator_dies(node: Node, step: str) -> None:
    """Policy 2 in force on the node: a container without a security option named probe*
    runs, a privileged one is killed."""
    name, bad = unique(f"probe{step}-{node.name}"), unique(f"violator{step}-{node.name}")
    start(node, name, cap_drop=["ALL"])
    start(node, bad, privileged=True)
    assert dies(node, bad)["ExitCode"] == 137
    runs_for(node, name, 2)
    remove(node, name)
    remove(node, bad)


def rollout(fleet: Swarmbed, policy: Path, old: int, new: int) -> subprocess.CompletedProcess[str]:
    lines = readme_block("swarm-rollout")
    lines = lines.replace("docker-covenant-policy-2", f"docker-covenant-policy-{new}")
    lines = lines.replace("docker-covenant-policy-1", f"docker-covenant-policy-{old}")
    return shell(host_specific(lines, fleet, policy), fleet.manager.host, timeout=400)


def update_state(fleet: Swarmbed, name: str = SERVICE) -> str:
    return str(service(fleet, name).get("UpdateStatus", {}).get("State", ""))


def test_policy_rollout_reaches_every_node_and_a_broken_one_rolls_back(
        fleet: Swarmbed, deployed: dict[str, Any]) -> None:
    ident = deployed["ident"]
    # under policy 1, a container without a security option is stopped (CV003) on every node
    before = {}
    for node in fleet.nodes:
        before[node.name] = unique(f"probe1-{node.name}")
        start(node, before[node.name], cap_drop=["ALL"])
    for node in fleet.nodes:
        dies(node, before[node.name])
        remove(node, before[node.name])

    v2 = policy_file(f"syslog_ident: {ident}\ndebug: yes\n{SELF_SECTION}"
                     "probe*:\n  security_opt_required: no\n")
    try:
        began = time.monotonic()
        done = rollout(fleet, v2, 1, 2)
        took = time.monotonic() - began
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        print(f"\nfleet: policy 2 rolled out to 3 nodes in {took:.1f} s")
        assert update_state(fleet) == "completed"
        assert policy_in_spec(fleet) == "docker-covenant-policy-2"
        guards = wait_until(lambda: all(ids := [healthy_guard(n) for n in fleet.nodes]) and ids, 60, 1,
                            "a healthy covenant task on every node")
        assert not set(guards) & set(deployed["guards"].values())  # every node's task was replaced
        # the same container runs now, on every node, and a violator still dies there
        for node in fleet.nodes:
            allowed_now_and_violator_dies(node, "2")
    finally:
        v2.unlink(missing_ok=True)

    broken = policy_file(f"syslog_ident: {ident}\nprofile: [strict\n")
    try:
        began = time.monotonic()
        done = rollout(fleet, broken, 2, 3)
        took = time.monotonic() - began
        print(f"\nfleet: broken policy 3 refused and rolled back in {took:.1f} s (exit {done.returncode})")
        wait_until(lambda: update_state(fleet) == "rollback_completed", 120, 1, "the rollback to complete")
        assert policy_in_spec(fleet) == "docker-covenant-policy-2"
        # no node was left unguarded: each kept its task (same container), healthy throughout
        for node, guard in zip(fleet.nodes, guards):
            assert healthy_guard(node) == guard, node.name
            allowed_now_and_violator_dies(node, "3")  # policy 2, not 1
        c = fleet.manager.client()
        try:
            failed = [t for t in c.api.tasks(filters={"service": SERVICE})
                      if t["Spec"]["ContainerSpec"]["Configs"][0]["ConfigName"] == "docker-covenant-policy-3"]
        finally:
            c.close()
        assert failed and all(t["Status"]["State"] in ("failed", "rejected", "shutdown") for t in failed)
        assert any(t["Status"].get("ContainerStatus", {}).get("ExitCode") == 2 for t in failed), failed
    finally:
        broken.unlink(missing_ok=True)


def test_a_restarted_node_comes_back_guarded(fleet: Swarmbed, deployed: dict[str, Any]) -> None:
    node = fleet.nodes[-1]
    old = healthy_guard(node)
    assert old
    began = time.monotonic()
    node.daemon.restart()
    guard = wait_until(lambda: healthy_guard(node), 180, 1, f"a healthy covenant task on {node.name} again")
    print(f"\nfleet: {node.name} guarded again {time.monotonic() - began:.1f} s after its dockerd was killed")
    assert guard != old
    name = unique(f"violator-after-restart-{node.name}")
    start(node, name, privileged=True)
    assert dies(node, name)["ExitCode"] == 137
    remove(node, name)


STACK_SERVICE = "covenant_docker-covenant"


def guarded_everywhere(fleet: Swarmbed, name: str, timeout: float) -> list[str]:
    """Each node's healthy covenant task container id, waiting for one on every node."""
    try:
        return list(wait_until(lambda: all(ids := [healthy_guard(n, name) for n in fleet.nodes]) and ids,
                               timeout, 1, f"a healthy task of {name} on every node"))
    except TimeoutError as e:
        c = fleet.manager.client()
        try:
            tasks = [(t["NodeID"][:6], t["Status"]["State"], t["Status"].get("Err"))
                     for t in c.api.tasks(filters={"service": name})]
        finally:
            c.close()
        nodes = {n.name: (n.node_id[:6], healthy_guard(n, name)) for n in fleet.nodes}
        raise AssertionError(f"{e}\nnodes: {nodes}\ntasks: {tasks}") from None


def stack_deploy(fleet: Swarmbed, work: Path, version: int, policy: Path) -> subprocess.CompletedProcess[str]:
    """README's stack line as it stands, with the host's paths changed: the socket (in a copy
    of the stack file, and for its group) and the policy file (POLICY_FILE)."""
    stack = (REPO / "contrib" / "docker-covenant-stack.yml").read_text()
    assert stack.count("source: /var/run/docker.sock\n") == 1
    copy = work / "docker-covenant-stack.yml"
    copy.write_text(stack.replace("source: /var/run/docker.sock\n", f"source: {fleet.node_socket}\n"))
    line = readme_block("swarm-stack").strip()
    socket = fleet.manager.run_dir / "docker.sock"
    for old, new in (("stat -c %g /var/run/docker.sock", f"stat -c %g {socket}"),
                     ("POLICY=1 ", f"POLICY={version} POLICY_FILE={policy} "),
                     ("-c contrib/docker-covenant-stack.yml", f"-c {copy}")):
        assert line.count(old) == 1, (old, line)
        line = line.replace(old, new)
    return shell(line, fleet.manager.host)


def test_the_stack_file_deploys_rolls_out_and_rolls_back(fleet: Swarmbed, deployed: dict[str, Any],
                                                          tmp_path: Path) -> None:
    c = fleet.manager.client()
    try:
        c.api.remove_service(SERVICE)
    finally:
        c.close()
    wait_until(lambda: not any(covenant_containers(n) for n in fleet.nodes), 60, 0.5,
               "the service's tasks gone")
    ident = deployed["ident"]
    sections = SELF_SECTION + SELF_SECTION.replace(f"={SERVICE}:", f"={STACK_SERVICE}:")
    v1 = policy_file(f"syslog_ident: {ident}\ndebug: yes\n{sections}")
    v2 = policy_file(f"syslog_ident: {ident}\ndebug: yes\n{sections}probe*:\n  security_opt_required: no\n")
    broken = policy_file(f"syslog_ident: {ident}\nprofile: [strict\n")
    try:
        done = stack_deploy(fleet, tmp_path, 1, v1)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        guards = guarded_everywhere(fleet, STACK_SERVICE, 120)
        spec = service(fleet, STACK_SERVICE)["Spec"]
        container = spec["TaskTemplate"]["ContainerSpec"]
        gid = (fleet.manager.run_dir / "docker.sock").stat().st_gid
        assert "Global" in spec["Mode"] and container["User"] == f"10001:{gid}"
        assert container["CapabilityDrop"] == ["ALL"] and container["ReadOnly"] is True
        assert spec["TaskTemplate"]["Resources"]["Limits"] == {"MemoryBytes": 256 * 1024 * 1024, "Pids": 64}
        update = spec["UpdateConfig"]
        assert (update["Parallelism"], update["Order"]) == (1, "start-first")
        assert update["FailureAction"] == "rollback"
        assert policy_in_spec(fleet, STACK_SERVICE) == "docker-covenant-stack-policy-1"
        for node in fleet.nodes:
            name = unique(f"stack-violator-{node.name}")
            start(node, name, privileged=True)
            assert dies(node, name)["ExitCode"] == 137
            remove(node, name)

        done = stack_deploy(fleet, tmp_path, 2, v2)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        wait_until(lambda: update_state(fleet, STACK_SERVICE) == "completed", 180, 1, "the stack's rollout")
        assert policy_in_spec(fleet, STACK_SERVICE) == "docker-covenant-stack-policy-2"
        guards = guarded_everywhere(fleet, STACK_SERVICE, 60)
        for node in fleet.nodes:
            allowed_now_and_violator_dies(node, "s2")

        done = stack_deploy(fleet, tmp_path, 3, broken)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        wait_until(lambda: update_state(fleet, STACK_SERVICE) == "rollback_completed", 180, 1,
                   "the stack's rollback")
        assert policy_in_spec(fleet, STACK_SERVICE) == "docker-covenant-stack-policy-2"
        for node, guard in zip(fleet.nodes, guards):
            assert healthy_guard(node, STACK_SERVICE) == guard, node.name
            allowed_now_and_violator_dies(node, "s3")
    finally:
        for f in (v1, v2, broken):
            f.unlink(missing_ok=True)


def test_the_fleet_audit_reports_every_node_and_names_an_unreachable_fourth(fleet: Swarmbed,
                                                                            tmp_path: Path) -> None:
    """``audit`` over the three nodes and a fourth engine nobody serves: one report, the
    node on every row, each node's container under its own host only, the fourth reported
    as not audited (exit status 2). The containers comply (a guard may be running)."""
    names = {node.host: f"fleet-audit-{i}" for i, node in enumerate(fleet.nodes)}
    for node in fleet.nodes:
        start(node, names[node.host], cap_drop=["ALL"], security_opt=["no-new-privileges"])
    try:
        config = tmp_path / "policy.yml"
        config.write_text("debug: no\n")
        fourth = f"unix://{tmp_path}/fourth.sock"
        hosts = [a for node in fleet.nodes for a in ("-H", node.host)]
        done = subprocess.run([sys.executable, "-m", "covenant", "audit", "--config", str(config),
                               "--format", "json", *hosts, "-H", fourth], capture_output=True, text=True,
                              timeout=300, check=False,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
        assert done.returncode == 2, done.stderr
        rows = json.loads(done.stdout)
        for node in fleet.nodes:
            mine = [r for r in rows if r["host"] == node.host]
            assert [r["name"] for r in mine if r["name"].startswith("fleet-audit-")] == [names[node.host]]
            [row] = [r for r in mine if r["name"] == names[node.host]]
            assert row["kind"] == "container" and row["violations"] == []
        [unreachable] = [r for r in rows if r["host"] == fourth]
        assert unreachable["kind"] == "engine" and "cannot reach Docker" in unreachable["error"]
    finally:
        for node in fleet.nodes:
            remove(node, names[node.host])
