"""Swarm services behind the authorization plugin: their task containers are created
inside dockerd (no API request for the plugin to see), so the service spec itself is
judged. Each refusal carries its control: the same request to a swarm manager without
the plugin runs a task container with the forbidden reach."""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
from harness import IMAGE, PrivateDockerd, UnixHTTP, unique, wait_until
from test_authz_walkarounds import CAP_SYS_ADMIN, JSON, cap_eff, sees_host_root


@dataclass
class Manager:
    client: docker.DockerClient
    http: UnixHTTP


@pytest.fixture(scope="module")
def managers(bed, dockerd: PrivateDockerd) -> Iterator[tuple[Manager, Manager]]:
    """(the guarded engine, the control) as single-node swarm managers, for this module."""
    pair = (Manager(bed[0].client(), bed[2]), Manager(dockerd.client(), UnixHTTP(dockerd.socket)))
    for m in pair:  # each on ports of its own: both engines share the host's network
        m.client.swarm.init(advertise_addr="127.0.0.1", listen_addr=f"127.0.0.1:{free_port()}",
                            data_path_port=free_port(socket.SOCK_DGRAM))
    yield pair
    for m in pair:
        for service in m.client.services.list():
            service.remove()
        m.client.swarm.leave(force=True)
        m.client.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port in swarm's range (1024-49151), below the kernel's ephemeral ones."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def spec(name: str, **container: Any) -> dict[str, Any]:
    return {"Name": name, "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": IMAGE, "Command": ["sleep", "300"], **container},
                             "RestartPolicy": {"Condition": "none"}}}


def task_container(client: docker.DockerClient, service: str, timeout: float = 0) -> dict[str, Any] | None:
    """The inspect of the service's running task container (waiting up to ``timeout``)."""
    def running() -> dict[str, Any] | None:
        found = client.api.containers(filters={"label": f"com.docker.swarm.service.name={service}"})
        return client.api.inspect_container(found[0]["Id"]) if found else None
    return wait_until(running, timeout, 0.2, f"a task of {service}") if timeout else running()


def host_network(stored: dict[str, Any]) -> bool:
    return os.readlink(f"/proc/{stored['State']['Pid']}/ns/net") == os.readlink("/proc/self/ns/net")


def privileged(stored: dict[str, Any]) -> bool:
    """It runs with CAP_SYS_ADMIN (a task being replaced may exit as we look: it does not)."""
    try:
        return bool(stored["State"]["Pid"]) and bool(cap_eff(stored["State"]["Pid"]) & CAP_SYS_ADMIN)
    except OSError:
        return False


# task containers are named SERVICE.SLOT.TASKID; on API 1.41 a service cannot set
# no-new-privileges, so this section lets them go without a security option
SVC = "'svc-*':\n  security_opt_required: no\n"
MOUNTS = SVC + "  sensitive_mounts_forbidden: yes\n"
SERVICES = {
    "capability add ALL": ({"CapabilityAdd": ["ALL"], "CapabilityDrop": ["ALL"]}, None, privileged, SVC),
    "CAP_SYS_ADMIN added": ({"CapabilityAdd": ["CAP_SYS_ADMIN"], "CapabilityDrop": ["ALL"]}, None, privileged,
                            SVC + "  no_added_capabilities: yes\n"),
    "a bind mount of /": ({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}],
                           "CapabilityDrop": ["ALL"]}, None, sees_host_root, MOUNTS),
    "a volume bound to / by its driver options": (
        {"Mounts": [{"Type": "volume", "Source": "{name}", "Target": "/host", "VolumeOptions": {
            "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}],
         "CapabilityDrop": ["ALL"]}, None, sees_host_root, MOUNTS),
    "the host network": ({"CapabilityDrop": ["ALL"]}, [{"Target": "host"}], host_network,
                         SVC + "  host_network_forbidden: yes\n"),
}


def create(m: Manager, name: str, container: dict[str, Any], networks: list[dict[str, str]] | None
           ) -> tuple[int, str]:
    body = spec(name, **json.loads(json.dumps(container).replace("{name}", name)))
    if networks:
        body["TaskTemplate"]["Networks"] = networks
    return m.http.request("POST", "/v1.41/services/create", json.dumps(body).encode(), JSON)


@pytest.mark.parametrize("case", sorted(SERVICES))
def test_a_violating_service_is_refused_and_runs_nothing(managers, plugin_policy, case):
    container, networks, reach, policy = SERVICES[case]
    plugin_policy(policy)
    guarded, control = managers
    name = unique("svc")
    status, text = create(guarded, name, container, networks)
    assert status == 403, text
    assert not guarded.client.services.list(filters={"name": name})
    assert task_container(guarded.client, name) is None
    status, text = create(control, name, container, networks)
    assert status == 201, text
    stored = task_container(control.client, name, timeout=60)
    assert reach(stored), f"{case}: the control's task does not have the reach: it proves nothing"


def test_a_compliant_service_runs_and_an_update_cannot_widen_it(managers, plugin_policy):
    plugin_policy(SVC + "  no_added_capabilities: yes\n")
    guarded, _ = managers
    name = unique("svc")
    locked = {"CapabilityDrop": ["ALL"]}
    for m in managers:
        status, text = create(m, name, locked, None)
        assert status == 201, text
        assert not privileged(task_container(m.client, name, timeout=60))  # a compliant service runs
        version = m.client.api.inspect_service(name)["Version"]["Index"]
        body = spec(name, CapabilityAdd=["CAP_SYS_ADMIN"], **locked)
        status, text = m.http.request("POST", f"/v1.41/services/{name}/update?version={version}",
                                      json.dumps(body).encode(), JSON)
        if m is guarded:
            assert status == 403 and "[CV006]" in text, text
            stored = m.client.api.inspect_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]
            assert "CapabilityAdd" not in stored
        else:
            assert status == 200, text
            tasks = {"label": f"com.docker.swarm.service.name={name}"}
            wait_until(lambda m=m, tasks=tasks: any(privileged(m.client.api.inspect_container(c["Id"]))
                                       for c in m.client.api.containers(filters=tasks)),
                       60, 0.2, "the updated task with CAP_SYS_ADMIN")


def privileged_tasks(m: Manager, name: str) -> list[str]:
    tasks = {"label": f"com.docker.swarm.service.name={name}"}
    return [c["Id"] for c in m.client.api.containers(filters=tasks)
            if privileged(m.client.api.inspect_container(c["Id"]))]


def test_a_rollback_to_a_violating_spec_is_refused(managers, plugin_policy):
    """``update?rollback=previous`` restores the stored PreviousSpec whatever its body says:
    a service made privileged while the plugin only warned, then made compliant, cannot be
    rolled back to it. The control rolls back and runs the privileged task again."""
    policy = SVC + "  no_added_capabilities: yes\n"
    name = unique("svc")
    locked = {"CapabilityDrop": ["ALL"]}
    wide = {"CapabilityAdd": ["CAP_SYS_ADMIN"], **locked}
    plugin_policy(policy + "mode: warn\n")
    for m in managers:
        status, text = create(m, name, wide, None)
        assert status == 201, text
    plugin_policy(policy)
    for m in managers:
        version = m.client.api.inspect_service(name)["Version"]["Index"]
        status, text = m.http.request("POST", f"/v1.41/services/{name}/update?version={version}",
                                      json.dumps(spec(name, **locked)).encode(), JSON)
        assert status == 200, text
        wait_until(lambda m=m: task_container(m.client, name) and not privileged_tasks(m, name), 60, 0.2,
                   "the compliant task to replace the privileged one")
        version = m.client.api.inspect_service(name)["Version"]["Index"]
        status, text = m.http.request("POST", f"/v1.41/services/{name}/update?version={version}"
                                      "&rollback=previous", json.dumps(spec(name, **locked)).encode(), JSON)
        if m is managers[0]:
            assert status == 403 and "[CV006]" in text, text
            assert "CapabilityAdd" not in m.client.api.inspect_service(name)["Spec"]["TaskTemplate"][
                "ContainerSpec"]
        else:
            assert status == 200, text
            wait_until(lambda m=m: privileged_tasks(m, name), 60, 0.2, "the rolled-back privileged task")
    assert not privileged_tasks(managers[0], name)  # the control's rollback ran meanwhile


def test_a_container_task_is_judged_as_a_container_whatever_its_plugin_spec(managers, plugin_policy):
    """dockerd makes a container task when Runtime is "" or "container", and ignores a
    PluginSpec beside the ContainerSpec: the spec is not a plugin, however allowed its
    PluginSpec's reference."""
    plugin_policy(SVC + "allowed_plugins: ['docker.io/vieux/sshfs:*']\n")
    name = unique("svc")
    for m in managers:
        body = spec(name, CapabilityAdd=["ALL"])
        body["TaskTemplate"].update({"PluginSpec": {"Remote": "vieux/sshfs"}, "Runtime": ""})
        status, text = m.http.request("POST", "/v1.41/services/create", json.dumps(body).encode(), JSON)
        if m is managers[0]:
            assert status == 403 and "[CV004]" in text, text
            assert task_container(m.client, name) is None
        else:
            assert status == 201, text
            assert privileged(task_container(m.client, name, timeout=60))


def test_published_ports_of_a_service_are_judged(managers, plugin_policy):
    """A host-mode published port becomes the task container's port binding on every
    interface (the task runs in the host network here, so nothing is really bound)."""
    plugin_policy(SVC + "  privileged_ports_forbidden: yes\n  host_ip_required: yes\n")
    name = unique("svc")
    for m in managers:
        body = spec(name, CapabilityDrop=["ALL"])
        body["TaskTemplate"]["Networks"] = [{"Target": "host"}]
        body["EndpointSpec"] = {"Ports": [{"TargetPort": 80, "PublishedPort": 80, "PublishMode": "host"}]}
        status, text = m.http.request("POST", "/v1.41/services/create", json.dumps(body).encode(), JSON)
        if m is managers[0]:
            assert status == 403 and "[CV008]" in text and "[CV009]" in text, text
            assert task_container(m.client, name) is None
        else:
            assert status == 201, text
            bindings = task_container(m.client, name, timeout=60)["HostConfig"]["PortBindings"]
            assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}, bindings
