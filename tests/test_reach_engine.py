"""What a container can reach, on the real engine, in the events daemon and in `audit`: each
walk-around of issue 10 is stopped (or reported) and its compliant twin keeps running."""

from __future__ import annotations

import contextlib
import json
import os
import uuid

import pytest
from harness import COMPLIANT, IMAGE, UnixHTTP, is_running, run_container, wait_until
from test_audit import audit

SECTIONS = """\
debug: no
vol-*:
  sensitive_mounts_forbidden: yes
  docker_socket_forbidden: yes
ns-*:
  host_pid_forbidden: yes
  host_network_forbidden: yes
  host_ipc_forbidden: yes
from-*:
  sensitive_mounts_forbidden: yes
dev-*:
  host_devices_forbidden: yes
proc-*:
  proc_unmasked_forbidden: yes
nnp-*:
  no_new_privileges_required: yes
label-*:
  selinux_disable_forbidden: yes
ulimit-*:
  ulimit_override_forbidden: yes
"""


@pytest.fixture
def volumes(client):
    """local volumes made by a test, removed after its containers are."""
    made = []

    def make(**options):
        volume = client.volumes.create(name=f"covtest-{uuid.uuid4().hex[:8]}", driver="local",
                                       driver_opts=options)
        made.append(volume)
        return volume.name

    yield make
    for container in client.containers.list(all=True):
        with contextlib.suppress(Exception):
            container.remove(force=True)
    for volume in made:
        with contextlib.suppress(Exception):
            volume.remove(force=True)


def start_raw(client, name, host_config):
    """A container made through the API with HostConfig fields docker-py has no option for."""
    hc = {"NetworkMode": "none", "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"], **host_config}
    created = client.api.create_container(IMAGE, ["sleep", "300"], name=name, host_config=hc)
    client.api.start(created["Id"])
    return client.containers.get(created["Id"])


def scenario(client, volumes, tmp_path):
    """(violating container, message it must log, compliant twin) of every item on the engine."""
    run = uuid.uuid4().hex[:6]
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    etc, run_dir, safe = (volumes(type="none", o="bind", device=d) for d in ("/etc", "/run", str(data)))
    out = [
        (run_container(client, f"vol-etc-{run}", volumes={etc: {"bind": "/x", "mode": "rw"}}, **COMPLIANT),
         f"sensitive host directory mounted read-write: /etc (volume {etc})",
         run_container(client, f"vol-ok-{run}", volumes={safe: {"bind": "/x", "mode": "rw"}}, **COMPLIANT)),
        (run_container(client, f"vol-run-{run}", volumes={run_dir: {"bind": "/x", "mode": "ro"}},
                       **COMPLIANT),
         f"Docker socket mounted: /run (volume {run_dir})", None),
    ]
    # the kernel's path, not the text: //etc/ is /etc; what is under a sensitive path is too
    out.append((run_container(client, f"vol-slashes-{run}", volumes={"//etc/": {"bind": "/x", "mode": "rw"}},
                              **COMPLIANT),
                "sensitive host directory mounted read-write: /etc", None))
    out.append((run_container(client, f"vol-sub-{run}", volumes={"/etc/shadow": {"bind": "/x", "mode": "rw"},
                                                                  "/usr/bin": {"bind": "/y", "mode": "rw"}},
                              **COMPLIANT),
                "sensitive host directory mounted read-write: /etc/shadow, /usr/bin", None))
    link, safe_link = tmp_path / f"innocent-{run}", tmp_path / f"safe-{run}"
    link.symlink_to("/etc")
    safe_link.symlink_to(data)
    out.append((run_container(client, f"vol-link-{run}", volumes={str(link): {"bind": "/x", "mode": "rw"}},
                              **COMPLIANT),
                f"sensitive host directory mounted read-write: /etc (through the link {link})",
                run_container(client, f"vol-link-ok-{run}",
                              volumes={str(safe_link): {"bind": "/x", "mode": "rw"}},
                              **COMPLIANT)))
    host_pid = run_container(client, f"hostpid-{run}", pid_mode="host", **COMPLIANT)
    own_pid = run_container(client, f"ownpid-{run}", **COMPLIANT)
    out.append((run_container(client, f"ns-bad-{run}", pid_mode=f"container:{host_pid.id}", **COMPLIANT),
                f"host PID namespace shared (through container {host_pid.id})",
                run_container(client, f"ns-ok-{run}", pid_mode=f"container:{own_pid.id}", **COMPLIANT)))
    host_net = run_container(client, f"hostnet-{run}", network_mode="host", **COMPLIANT)
    own_net = run_container(client, f"ownnet-{run}", **COMPLIANT)
    out.append((run_container(client, f"ns-net-bad-{run}", network_mode=f"container:{host_net.id}",
                              **COMPLIANT),
                f"host network namespace shared (through container {host_net.id})",
                run_container(client, f"ns-net-ok-{run}", network_mode=f"container:{own_net.id}",
                              **COMPLIANT)))
    host_ipc = run_container(client, f"hostipc-{run}", ipc_mode="host", **COMPLIANT)
    own_ipc = run_container(client, f"ownipc-{run}", ipc_mode="shareable", **COMPLIANT)
    out.append((run_container(client, f"ns-ipc-bad-{run}", ipc_mode=f"container:{host_ipc.id}", **COMPLIANT),
                f"host IPC namespace shared (through container {host_ipc.id})",
                run_container(client, f"ns-ipc-ok-{run}", ipc_mode=f"container:{own_ipc.id}", **COMPLIANT)))
    etc_holder = run_container(client, f"holder-{run}", volumes={"/etc": {"bind": "/h", "mode": "rw"}},
                               **COMPLIANT)
    data_holder = run_container(client, f"holder-ok-{run}", volumes={str(data): {"bind": "/h", "mode": "rw"}},
                                **COMPLIANT)
    out.append((run_container(client, f"from-bad-{run}", volumes_from=[etc_holder.id], **COMPLIANT),
                "sensitive host directory mounted read-write: /etc",
                run_container(client, f"from-ok-{run}", volumes_from=[data_holder.id], **COMPLIANT)))
    out.append((run_container(client, f"dev-bad-{run}", device_cgroup_rules=["c 1:3 rwm"], **COMPLIANT),
                "host devices exposed: cgroup rule 'c 1:3 rwm'",
                run_container(client, f"dev-ok-{run}", **COMPLIANT)))
    out.append((start_raw(client, f"proc-bad-{run}", {"MaskedPaths": [], "ReadonlyPaths": []}),
                "/proc paths unmasked: /proc/kcore unmasked, /proc/sys writable",
                start_raw(client, f"proc-ok-{run}", {})))
    # dockerd reads these through Go's strconv.ParseBool: 0 is false, T is true
    out.append((run_container(client, f"nnp-bad-{run}", cap_drop=["ALL"],
                              security_opt=["no-new-privileges=0"]),
                "no-new-privileges not set",
                run_container(client, f"nnp-ok-{run}", cap_drop=["ALL"],
                              security_opt=["no-new-privileges=T"])))
    out.append((run_container(client, f"label-bad-{run}", cap_drop=["ALL"],
                              security_opt=["no-new-privileges", "label=disable"]),
                "SELinux labels disabled", run_container(client, f"label-ok-{run}", **COMPLIANT)))
    nofile = [{"Name": "nofile", "Soft": 512, "Hard": 512}]
    out.append((run_container(client, f"ulimit-bad-{run}", ulimits=nofile, **COMPLIANT),
                "ulimits overridden: nofile", run_container(client, f"ulimit-ok-{run}", **COMPLIANT)))
    return out


def test_the_daemon_stops_what_can_reach_the_host(tmp_path, client, volumes, covenant_factory, journal):
    cov = covenant_factory(SECTIONS)
    cases = scenario(client, volumes, tmp_path)
    for bad, text, good in cases:
        journal.wait_for(cov.ident, f"{bad.name}: {text}")
        journal.wait_for(cov.ident, f"{bad.name}: stopping container")
        if good is not None:
            journal.wait_for(cov.ident, f"{good.name}: allowed")
    for bad, _, good in cases:
        wait_until(lambda c=bad: not is_running(c), 5, what=f"{bad.name} to die")
        assert good is None or is_running(good), f"compliant {good.name} was stopped"


def test_audit_reports_what_can_reach_the_host(tmp_path, dockerd, client, volumes):
    cases = scenario(client, volumes, tmp_path)
    result = audit(tmp_path, dockerd, "--format", "json", policy=SECTIONS)
    assert result.returncode == 1, result.stderr
    report = {c["name"]: [v["message"] for v in c["violations"]] for c in json.loads(result.stdout)}
    for bad, text, good in cases:
        assert f"{bad.name}: {text}" in report[bad.name], report[bad.name]
        assert good is None or report[good.name] == []
    # offline there is no engine to resolve the volume with: judged as the volume it declares
    saved = json.dumps([client.api.inspect_container(bad.id) for bad, *_ in cases[:1]])
    offline = audit(tmp_path, dockerd, "--inspect", "-", "--format", "json", policy=SECTIONS, stdin=saved,
                    host=f"unix://{tmp_path}/nothing.sock")
    assert offline.returncode == 0, offline.stdout + offline.stderr




def test_the_host_network_by_its_id_is_no_host_namespace(dockerd, client):
    """CV010 flags NetworkMode ``host``, not the ``host`` network (driver ``host``) named by its
    ID, a prefix of it, or as an endpoint: dockerd gives the host's namespace only to the mode
    spelled ``host`` (``NetworkMode.IsHost()`` picks the default sandbox); those other spellings
    run in a namespace of their own with only ``lo``, and an attach to the host network is
    refused. Pinned on both engines: were an engine to resolve the ID to ``host`` (moby's
    ``normalizeNetMode`` has a TODO to), the inspect judged at start would say ``host`` but
    the create body would not, and CV010 would need the network's driver."""
    http = UnixHTTP(dockerd.socket)
    own = os.readlink(f"/proc/{int((dockerd.root / 'dockerd.pid').read_text())}/ns/net")
    host_net = next(n for n in client.api.networks() if n["Driver"] == "host")
    assert host_net["Name"] == "host"
    spellings = [({"NetworkMode": host_net["Id"]}, None), ({"NetworkMode": host_net["Id"][:12]}, None),
                 ({"NetworkMode": "none"}, {"host": {}}), ({}, {host_net["Id"]: {}})]
    for host_config, endpoints in spellings:
        body = {"Image": IMAGE, "Cmd": ["sleep", "300"], "HostConfig": host_config,
                "NetworkingConfig": {"EndpointsConfig": endpoints or {}}}
        status, answer = http.request("POST", "/v1.41/containers/create", json.dumps(body).encode(),
                                      {"Content-Type": "application/json"})
        assert status == 201, answer
        ref = json.loads(answer)["Id"]
        assert http.request("POST", f"/v1.41/containers/{ref}/start")[0] == 204
        stored = client.api.inspect_container(ref)
        assert stored["HostConfig"]["NetworkMode"] != "host"
        assert list(stored["NetworkSettings"]["Networks"]) == ["host"]
        pid = stored["State"]["Pid"]
        assert stored["State"]["Running"] and os.readlink(f"/proc/{pid}/ns/net") != own, host_config
        with open(f"/proc/{pid}/net/dev") as f:
            assert [line.split(":")[0].strip() for line in f.readlines()[2:]] == ["lo"], host_config
        attach = json.dumps({"Container": ref}).encode()
        status, answer = http.request("POST", "/v1.41/networks/host/connect", attach,
                                      {"Content-Type": "application/json"})
        assert status == 400 and "connected to host network" in answer
