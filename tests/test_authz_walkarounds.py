"""Walk-arounds of the authorization plugin, each sent as raw requests to a real dockerd
with the plugin and, as its control, to a dockerd without it.

A case passes only if the control ran the violator (so the request itself is sound: it
has a Cmd, routes, decodes) and the guarded engine ran nothing with that reach. What ran
is read from the engines (``docker inspect`` State, /proc/<pid>/status CapEff, the
container's view of its mounts), never from a status code alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import pytest
from harness import AUTHZ_BASE_POLICY, IMAGE, PrivateDockerd, UnixHTTP, unique

JSON = {"Content-Type": "application/json"}
NEVER = "0001-01-01T00:00:00Z"
CAP_SYS_ADMIN = 1 << 21
CAP_NET_RAW = 1 << 13  # in Docker's default set
SLEEP = '"Cmd": ["sleep", "300"]'
LOCKED = '"CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"], "NetworkMode": "none"'
DEEP = "[" * 3000 + "]" * 3000  # Go decodes it (depth limit 10,000); the plugin's reader refuses it
MOUNTS_POLICY = AUTHZ_BASE_POLICY + "'*':\n  sensitive_mounts_forbidden: yes\n"
PIDS_POLICY = AUTHZ_BASE_POLICY + "'*':\n  pids_limit_required: yes\n"


def cap_eff(pid: int) -> int:
    """The process's effective capabilities; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(x for x in f if x.startswith("CapEff:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1], 16)


def privileged(stored: dict[str, Any]) -> bool:
    """It ran with CAP_SYS_ADMIN in its effective set."""
    return bool(stored["State"]["Running"]) and bool(cap_eff(stored["State"]["Pid"]) & CAP_SYS_ADMIN)


def sees_host_root(stored: dict[str, Any]) -> bool:
    """The container's /host is the host's / (same device and inode)."""
    if not stored["State"]["Running"]:
        return False
    try:
        inside = os.stat(f"/proc/{stored['State']['Pid']}/root/host")
    except OSError:
        return False
    root = os.stat("/")
    return (inside.st_dev, inside.st_ino) == (root.st_dev, root.st_ino)


@dataclass(frozen=True)
class Case:
    """Raw requests in order ({name}: the container; {exec}: the exec id an exec create
    returned); ``reach`` tells from an inspect whether the violator has what it wanted."""
    steps: tuple[tuple[str, str, bytes | None], ...]
    reach: Callable[[dict[str, Any]], bool] = privileged
    policy: str = AUTHZ_BASE_POLICY
    exec_into: bool = False  # the steps exec into a compliant running container {name}
    setup: tuple[tuple[str, str, bytes | None], ...] = field(default=())
    # engines that refuse the request themselves (400): there the walk-around does not exist
    refused_by: frozenset[str] = frozenset()


def run_create(body: str, create: str = "/v1.41/containers/create?name={name}",
               start: str = "/v1.41/containers/{name}/start", **kw: Any) -> Case:
    return Case(((create, "POST", body.encode("utf-8", "surrogateescape")), (start, "POST", None)), **kw)


def run_exec(body: str, create: str = "/v1.41/containers/{name}/exec",
             start: str = "/v1.41/exec/{exec}/start") -> Case:
    return Case(((create, "POST", body.encode()), (start, "POST", b'{"Detach": true}')), exec_into=True)


def container(host: str, extra: str = "", key: str = "HostConfig") -> str:
    """A create body that runs ``sleep 300`` with ``host`` inside its HostConfig."""
    return '{"Image": "' + IMAGE + '", "Cmd": ["sleep", "300"], ' + extra + '"' + key + '": {' + host + "}}"


PRIV = '"Privileged": true, "NetworkMode": "none"'
PRIVILEGED_BODY = container(PRIV)
HOST_ROOT = '{"Type": "bind", "Source": "/", "Target": "/host"}'
BIND_ROOT = '{"type": "none", "o": "bind", "device": "/"}'
EXEC = '{"Cmd": ["sleep", "60"], "Privileged": true}'


def versioned(prefix: str) -> Case:
    return run_create(PRIVILEGED_BODY, f"{prefix}/containers/create?name={{name}}",
                      f"{prefix}/containers/{{name}}/start")


CASES: dict[str, Case] = {
    # routing: version strings and request targets dockerd's router accepts
    "version with a third component": versioned("/v1.41.0"),
    "version with four components": versioned("/v1.41.0.0"),
    "version with leading zeros": versioned("/v01.041"),
    "no version prefix": versioned(""),
    "absolute-form target": versioned("http://docker/v1.41"),
    "percent-encoded path": run_create(PRIVILEGED_BODY, "/v1.41/containers/%63reate?name={name}",
                                       "/v1.41/containers/{name}/%73tart"),
    "exec with a third version component": run_exec(EXEC, "/v1.41.0/containers/{name}/exec",
                                                    "/v1.41.0/exec/{exec}/start"),
    "exec without a version": run_exec(EXEC, "/containers/{name}/exec", "/exec/{exec}/start"),
    # bodies the plugin cannot read (an exception once meant an allow)
    "deep nesting": run_create(container(PRIV, f'"X": {DEEP}, ')),
    "a number with 5,000 digits": run_create(container(PRIV, '"X": ' + "9" * 5000 + ", ")),
    "invalid UTF-8 in a key": run_create(container(PRIV, '"X\udcff": 1, ')),
    "exec with deep nesting": run_exec('{"Cmd": ["sleep", "60"], "X": ' + DEEP + ', "Privileged": true}'),
    # JSON read as Go reads it
    "lowercase keys": run_create('{"image": "' + IMAGE + '", "cmd": ["sleep", "300"], '
                                 '"hostconfig": {"privileged": true, "networkmode": "none"}}'),
    "long s folds to s in a key": run_create(container(PRIV, key="Ho\\u017ftConfig")),
    "null leaves a bool as it was": run_create(container('"Privileged": true, "Privileged": null, '
                                                         '"NetworkMode": "none"')),
    "a repeated HostConfig merges": run_create(container(LOCKED, '"HostConfig": {"Privileged": true}, ')),
    "HostConfig fields at the top level": run_create('{"Image": "' + IMAGE + '", "Cmd": ["sleep", "300"], '
                                                     + PRIV + "}"),
    "CapAdd as one string": run_create(container('"CapAdd": "ALL", ' + LOCKED)),
    # dockerd 20.10 decodes the first value and ignores the rest; later ones refuse what
    # follows it ("unexpected content after JSON", moby daemon/server/httputils ReadJSON)
    "a second JSON value after the first": run_create(PRIVILEGED_BODY + ' {"HostConfig": {' + LOCKED + "}}",
                                                      refused_by=frozenset({"26"})),
    "a repeated Mounts array decodes into the first": run_create(
        container(LOCKED + ', "Mounts": [' + HOST_ROOT + '], "Mounts": [{"Target": "/host"}]'),
        reach=sees_host_root, policy=MOUNTS_POLICY),
    "exec lowercase key": run_exec('{"Cmd": ["sleep", "60"], "privileged": true}'),
    "exec null leaves a bool as it was": run_exec('{"Cmd": ["sleep", "60"], "Privileged": true, '
                                                  '"Privileged": null}'),
    # a named volume that is a bind of the host's /
    "local volume bound to /": Case((
        ("/v1.41/volumes/create", "POST", ('{"Name": "{name}", "Driver": "local", "DriverOpts": ' + BIND_ROOT
                                           + "}").encode()),
        ("/v1.41/containers/create?name={name}", "POST",
         container(LOCKED + ', "Binds": ["{name}:/host"]').encode()),
        ("/v1.41/containers/{name}/start", "POST", None)), reach=sees_host_root, policy=MOUNTS_POLICY),
    "volume created inline by a Mounts entry": run_create(
        container(LOCKED + ', "Mounts": [{"Type": "volume", "Source": "{name}", "Target": "/host", '
                  '"VolumeOptions": {"DriverConfig": {"Name": "local", "Options": ' + BIND_ROOT + "}}}]"),
        reach=sees_host_root, policy=MOUNTS_POLICY),
}


def send(http: UnixHTTP, steps: tuple[tuple[str, str, bytes | None], ...], name: str) -> list[int]:
    """Send the steps in order, stopping at the first refusal; the statuses."""
    statuses, exec_id = [], ""
    for target, method, body in steps:
        data = body.replace(b"{name}", name.encode()) if body is not None else None
        status, text = http.request(method, target.format(name=name, exec=exec_id), data,
                                    JSON if data is not None else {})
        statuses.append(status)
        if status >= 300:
            break
        if "/exec" in target and status == 201:
            exec_id = json.loads(text)["Id"]
    return statuses


@dataclass
class Engine:
    """One dockerd, as the test sees it: raw HTTP for the attack, docker-py to look."""
    http: UnixHTTP
    client: docker.DockerClient
    names: list[str] = field(default_factory=list)

    def attempt(self, case: Case) -> tuple[list[int], dict[str, Any] | None]:
        """Run the case; (statuses, the inspect of what has the case's reach, if anything)."""
        name = unique("walk")
        self.names.append(name)
        if case.exec_into:
            self.client.containers.run(IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none",
                                       cap_drop=["ALL"], security_opt=["no-new-privileges"])
        statuses = send(self.http, case.steps, name)
        return statuses, self.reached(name, case)

    def reached(self, name: str, case: Case) -> dict[str, Any] | None:
        api = self.client.api
        if case.exec_into:
            for exec_id in api.inspect_container(name).get("ExecIDs") or []:
                stored = api.exec_inspect(exec_id)
                if stored["Running"] and cap_eff(stored["Pid"]) & CAP_SYS_ADMIN:
                    return stored
            return None
        try:
            stored = api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        return stored if case.reach(stored) else None

    def clean(self) -> None:
        """Containers first, then volumes (a volume in use cannot be removed)."""
        for name in self.names:
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.remove_container(name, force=True)
        for name in self.names:
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.remove_volume(name, force=True)
        self.names.clear()


@pytest.fixture
def engines(bed, dockerd: PrivateDockerd) -> Iterator[tuple[Engine, Engine]]:
    """(the engine with the plugin, the control without it)."""
    guarded = Engine(bed[2], bed[0].client())
    control = Engine(UnixHTTP(dockerd.socket), dockerd.client())
    yield guarded, control
    for engine in (guarded, control):
        engine.clean()
        engine.client.close()


@pytest.mark.parametrize("fail", ["closed", "open"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_walkaround_never_runs_the_violator(engines, plugin_policy, case, fail, engine):
    """With ``fail: open`` the bodies the plugin cannot read are created, and must still
    never start; with ``fail: closed`` they are refused at once."""
    guarded, control = engines
    plugin_policy(CASES[case].policy + f"fail: {fail}\n")
    statuses, ran = guarded.attempt(CASES[case])
    assert ran is None, f"{case}: the violator ran behind the plugin ({statuses})"
    if engine.version in CASES[case].refused_by:
        statuses, ran = control.attempt(CASES[case])
        assert ran is None and 400 in statuses, f"{case}: dockerd {engine.version} no longer refuses it"
        return
    assert 403 in statuses, statuses  # the plugin (not dockerd) stopped it
    statuses, ran = control.attempt(CASES[case])
    assert ran is not None, f"{case}: the control did not run the violator ({statuses}): it proves nothing"


def test_a_started_container_cannot_be_widened_by_update(engines, plugin_policy):
    """``docker update --pids-limit -1`` makes a limited container unlimited; refused."""
    plugin_policy(PIDS_POLICY)
    for engine in engines:
        name = unique("upd")
        engine.names.append(name)
        engine.client.containers.run(IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none",
                                     cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=100)
        status, text = engine.http.request("POST", f"/v1.41.0/containers/{name}/update", b'{"PidsLimit": -1}',
                                           JSON)
        limit = engine.client.api.inspect_container(name)["HostConfig"]["PidsLimit"]
        if engine is engines[0]:
            assert status == 403 and "[CV025]" in text, text
            assert limit == 100
        else:
            assert status == 200 and limit in (None, 0, -1), (status, text, limit)


def build(client: docker.DockerClient, run: str = "readlink /proc/self/ns/net", **params: Any) -> str:
    """Build ``RUN <run>`` with the classic builder; its output."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = f"FROM {IMAGE}\nRUN {run}\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    out = client.api.build(fileobj=context, custom_context=True, rm=True, forcerm=True, decode=True, **params)
    return "".join(str(chunk.get("stream", "")) + str(chunk.get("error", "")) for chunk in out)


def test_a_build_cannot_run_its_steps_in_the_host_network(engines, plugin_policy):
    plugin_policy(AUTHZ_BASE_POLICY + "'*':\n  host_network_forbidden: yes\n")
    guarded, control = engines
    host = os.readlink("/proc/self/ns/net")
    with pytest.raises(docker.errors.APIError) as refused:
        build(guarded.client, network_mode="host")
    assert "[CV010]" in str(refused.value)
    assert host in build(control.client, network_mode="host")  # the control's RUN step shared it


def test_a_build_whose_steps_the_policy_refuses_runs_no_step(engines, plugin_policy):
    """Classic-build RUN steps are containers with Docker's default capabilities and no
    security option: under the base policy (which requires dropping all and a security
    option) the build is refused before any step runs. The control's step runs with the
    default capabilities; a policy that does not require them lets the build through."""
    guarded, control = engines
    before = {c["Id"] for c in guarded.client.api.containers(all=True)}
    with pytest.raises(docker.errors.APIError) as refused:
        build(guarded.client, run="cat /proc/self/status")
    assert "[CV002] build (its RUN steps)" in str(refused.value) and "[CV003]" in str(refused.value)
    assert {c["Id"] for c in guarded.client.api.containers(all=True)} == before
    found = re.search(r"CapEff:\s*([0-9a-f]+)", build(control.client, run="cat /proc/self/status"))
    assert found and int(found.group(1), 16) & CAP_NET_RAW, "the control's step did not run with the defaults"
    plugin_policy(AUTHZ_BASE_POLICY + "'*':\n  cap_drop_required: no\n  security_opt_required: no\n")
    assert "CapEff" in build(guarded.client, run="cat /proc/self/status")


# -- names: the policy is kept per name, and a start names its container by a reference --

PRIV_SECTION = "'priv-*':\n  privileged: yes\n  cap_drop_required: no\n  security_opt_required: no\n"


def run_named(engine: Engine, name: str, **kwargs: Any) -> None:
    engine.names.append(name)
    engine.client.containers.run(IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none",
                                 **kwargs)


def rename(engine: Engine, ref: str, new: str) -> int:
    engine.names.append(new)
    return engine.http.request("POST", f"/v1.41/containers/{ref}/rename?name={new}")[0]


def test_a_running_privileged_container_cannot_be_renamed_out_of_its_section(engines, plugin_policy):
    plugin_policy(AUTHZ_BASE_POLICY + PRIV_SECTION)
    for engine in engines:
        name = unique("priv")
        run_named(engine, name, privileged=True)
        evil = name.replace("priv-", "evil-")
        status = rename(engine, name, evil)
        stored = engine.client.api.inspect_container(evil if status == 204 else name)
        if engine is engines[0]:
            assert status == 403 and stored["Name"] == f"/{name}"
        else:  # control: a privileged container runs under a name that may not be privileged
            assert status == 204 and privileged(stored)


def test_a_privileged_exec_cannot_be_carried_out_of_its_section_by_renames(engines, plugin_policy):
    plugin_policy(AUTHZ_BASE_POLICY + PRIV_SECTION)
    for engine in engines:
        web = unique("web")
        run_named(engine, web, cap_drop=["ALL"], security_opt=["no-new-privileges"])
        borrowed = web.replace("web-", "priv-")
        assert rename(engine, web, borrowed) == 204  # a compliant container may take any name
        statuses = send(engine.http, run_exec(EXEC).steps, borrowed)
        assert statuses == [201, 200], statuses  # the section allows privileged exec
        back = rename(engine, borrowed, web)
        if engine is engines[0]:
            assert back == 403
            assert engine.client.api.inspect_container(borrowed)["Name"] == f"/{borrowed}"
        else:
            assert back == 204 and engine.reached(web, run_exec(EXEC)) is not None


def start_while_renaming(http: UnixHTTP, ref: str, new: str, delay: float | None) -> None:
    """Start ``ref`` and, ``delay`` seconds later on another connection, rename it; a
    negative delay renames first and starts that much later (``None``: one after the other)."""
    if delay is None:
        http.request("POST", f"/v1.41/containers/{ref}/rename?name={new}")
        http.request("POST", f"/v1.41/containers/{ref}/start")
        return
    first, then = ((f"/v1.41/containers/{ref}/start", f"/v1.41/containers/{ref}/rename?name={new}")
                   if delay >= 0 else
                   (f"/v1.41/containers/{ref}/rename?name={new}", f"/v1.41/containers/{ref}/start"))
    other = threading.Thread(target=http.request, args=("POST", first))
    other.start()
    time.sleep(abs(delay))
    http.request("POST", then)
    other.join()


def race(engine: Engine, delays: list[float | None]) -> int:
    """A stopped violator B, and a compliant A named with B's id prefix: start A by that
    name while renaming A away, so that the name falls through to B's id prefix. How many
    attempts started B."""
    won = 0
    for delay in delays:
        b = unique("raceb")
        engine.names.append(b)
        status, text = engine.http.request("POST", f"/v1.41/containers/create?name={b}",
                                           container(PRIV, f'"X": {DEEP}, ').encode(), JSON)
        assert status == 201, text
        prefix = json.loads(text)["Id"][:12]
        engine.names.append(prefix)
        engine.client.containers.create(IMAGE, ["sleep", "300"], name=prefix, network_mode="none",
                                        cap_drop=["ALL"], security_opt=["no-new-privileges"])
        start_while_renaming(engine.http, prefix, f"{b}-a", delay)
        engine.names.append(f"{b}-a")
        won += engine.client.api.inspect_container(b)["State"]["StartedAt"] != NEVER
    return won


def test_a_start_cannot_be_redirected_to_another_container_by_a_rename_in_flight(engines, plugin_policy):
    """The plugin judges what the reference names when it asks; the gate keeps renames,
    named creates and removals from changing that before dockerd has started it."""
    plugin_policy(AUTHZ_BASE_POLICY + "fail: open\n")  # B (unreadable, privileged) is created, not started
    guarded, control = engines
    # The rename sent 0.5-3 ms before the start lands between the plugin's inspect and
    # dockerd's start: without the gate B started in 7 of these 20 attempts.
    assert race(guarded, [-0.003, -0.002, -0.0015, -0.001, -0.0005] * 4) == 0
    # control: the order dockerd acts in when the race is won (the rename lands between
    # the plugin's inspect and the start) starts B on an engine without the plugin
    assert race(control, [None]) == 1


# -- exec as root into a container whose section requires a non-root user --

NONROOT_POLICY = AUTHZ_BASE_POLICY + "'nonroot-*':\n  non_root_required: yes\n"


def uid_of(pid: int) -> int | None:
    """The process's real uid; None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(x for x in f if x.startswith("Uid:")).split()[1])
    except (OSError, StopIteration):
        return None


def exec_as(engine: Engine, name: str, user: str) -> tuple[int, str]:
    body = json.dumps({"Cmd": ["sleep", "61"], "User": user}).encode()
    return engine.http.request("POST", f"/v1.41/containers/{name}/exec", body, JSON)


@pytest.mark.parametrize("user", ["0", "00", "+0", "0:1000"])
def test_an_exec_as_root_into_a_non_root_container_never_runs(engines, plugin_policy, user):
    """Refused at exec create; an exec created while the plugin only warned is refused at
    its start, judged on the user dockerd stored. The control runs it as uid 0 (runc reads
    ``00`` and ``+0`` as Go's strconv.Atoi does; the test image has no /etc/passwd, so
    no user names)."""
    guarded, control = engines
    name = unique("nonroot")
    for engine in engines:
        run_named(engine, name, user="1000", cap_drop=["ALL"], security_opt=["no-new-privileges"])
    plugin_policy(NONROOT_POLICY)
    status, text = exec_as(guarded, name, user)
    assert status == 403 and "[CV027]" in text, text
    plugin_policy(NONROOT_POLICY + "mode: warn\n")
    status, text = exec_as(guarded, name, user)
    assert status == 201, text
    exec_id = json.loads(text)["Id"]
    plugin_policy(NONROOT_POLICY)
    status, text = guarded.http.request("POST", f"/v1.41/exec/{exec_id}/start", b'{"Detach": true}', JSON)
    assert status == 403 and "[CV027]" in text, text
    stored = guarded.client.api.exec_inspect(exec_id)
    assert not stored["Running"] and not stored["Pid"], stored
    # control: the same exec runs as root
    status, text = exec_as(control, name, user)
    exec_id = json.loads(text)["Id"]
    control.http.request("POST", f"/v1.41/exec/{exec_id}/start", b'{"Detach": true}', JSON)
    stored = control.client.api.exec_inspect(exec_id)
    assert stored["Running"] and uid_of(stored["Pid"]) == 0, (user, stored)


# -- what a container reaches through a volume that already exists --

def sees_host_etc(stored: dict[str, Any]) -> bool:
    """The container's /x is the host's /etc (same device and inode)."""
    if not stored["State"]["Running"]:
        return False
    try:
        inside = os.stat(f"/proc/{stored['State']['Pid']}/root/x")
    except OSError:
        return False
    etc = os.stat("/etc")
    return (inside.st_dev, inside.st_ino) == (etc.st_dev, etc.st_ino)


def test_a_named_volume_that_binds_etc_is_judged_at_create_and_at_start(engines, plugin_policy):
    """The volume exists already (made while the plugin only warned): a create naming it is
    refused for what the volume binds, and a container stored with it never starts. The
    control runs a container that sees the host's /etc."""
    guarded, control = engines
    volume, name = unique("etcvol"), unique("withvol")
    options = {"type": "none", "o": "bind", "device": "/etc"}
    body = container(LOCKED + f', "Binds": ["{volume}:/x"]').encode()
    plugin_policy(MOUNTS_POLICY + "mode: warn\n")
    for engine in engines:
        engine.client.api.create_volume(volume, "local", options)
        engine.names.append(volume)
    status, text = guarded.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)
    assert status == 201, text  # stored while only warned
    guarded.names.append(name)
    plugin_policy(MOUNTS_POLICY)
    status, text = guarded.http.request("POST", f"/v1.41/containers/create?name={name}-2", body, JSON)
    assert status == 403 and "[CV007]" in text and "/etc" in text, text
    status, text = guarded.http.request("POST", f"/v1.41/containers/{name}/start")
    assert status == 403 and "[CV007]" in text, text
    assert guarded.client.api.inspect_container(name)["State"]["StartedAt"] == NEVER
    # control: the same create and start give a container that sees the host's /etc
    assert control.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)[0] == 201
    control.names.append(name)
    assert control.http.request("POST", f"/v1.41/containers/{name}/start")[0] == 204
    assert sees_host_etc(control.client.api.inspect_container(name))


def test_a_bind_through_a_symbolic_link_to_etc_never_runs(engines, plugin_policy, tmp_path):
    """The kernel follows a link in a bind's source: refused at create for where it leads,
    and a container stored with it (made while the plugin only warned) never starts. The
    control runs a container that sees the host's /etc through the link."""
    guarded, control = engines
    link, name = tmp_path / "innocent", unique("linked")
    link.symlink_to("/etc")
    body = container(LOCKED + f', "Binds": ["{link}:/x"]').encode()
    plugin_policy(MOUNTS_POLICY + "mode: warn\n")
    status, text = guarded.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)
    assert status == 201, text
    guarded.names.append(name)
    plugin_policy(MOUNTS_POLICY)
    status, text = guarded.http.request("POST", f"/v1.41/containers/create?name={name}-2", body, JSON)
    assert status == 403 and "[CV007]" in text and f"/etc (through the link {link})" in text, text
    status, text = guarded.http.request("POST", f"/v1.41/containers/{name}/start")
    assert status == 403 and "[CV007]" in text, text
    assert guarded.client.api.inspect_container(name)["State"]["StartedAt"] == NEVER
    assert control.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)[0] == 201
    control.names.append(name)
    assert control.http.request("POST", f"/v1.41/containers/{name}/start")[0] == 204
    assert sees_host_etc(control.client.api.inspect_container(name))


def test_a_start_after_an_update_is_judged_on_the_updated_container(engines, plugin_policy):
    """The plugin fetches a container's inspect as soon as its create is done, for the
    start; an update in between (here made while the plugin only warned) must make the
    start look again. The control starts the container as updated, unlimited."""
    guarded, _ = engines
    plugin_policy(PIDS_POLICY)
    body = container(LOCKED + ', "PidsLimit": 100').encode()
    for engine in engines:
        name = unique("upd")
        status, text = engine.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)
        assert status == 201, text
        engine.names.append(name)
        full = json.loads(text)["Id"]
        if engine is guarded:
            plugin_policy(PIDS_POLICY + "mode: warn\n")
        # by name: a lookup by the full id would use (and so spend) what the create fetched
        assert engine.http.request("POST", f"/v1.41/containers/{name}/update", b'{"PidsLimit": -1}',
                                   JSON)[0] == 200
        if engine is guarded:
            plugin_policy(PIDS_POLICY)
        status, text = engine.http.request("POST", f"/v1.41/containers/{full}/start")
        stored = engine.client.api.inspect_container(full)
        if engine is guarded:
            assert status == 403 and "[CV025]" in text, text
            assert stored["State"]["StartedAt"] == NEVER
        else:
            assert status == 204 and stored["State"]["Running"] and stored["HostConfig"]["PidsLimit"] in (
                None, 0, -1), stored["HostConfig"]["PidsLimit"]


def test_a_privileged_host_port_range_is_refused_at_create(engines, plugin_policy):
    """``HostPort: "80-90"`` asks dockerd for any free port of the range (and ``"80/udp"``
    for port 80: it reads what is before a ``/``). The test beds have no bridge, so no port
    can be bound here: the control shows dockerd stores such a binding as sent (201) and
    the plugin refuses the create, so nothing is stored behind it."""
    guarded, control = engines
    plugin_policy("'*':\n  privileged_ports_forbidden: yes\n")
    for host_port in ("80-90", "0080", "443/udp", "1000-2000"):
        body = json.dumps({"Image": IMAGE, "Cmd": ["sleep", "300"], "HostConfig": {
            "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": host_port}]}}}).encode()
        name = unique("ports")
        guarded.names.append(name)
        control.names.append(name)
        status, text = guarded.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)
        assert status == 403 and "[CV008]" in text, (host_port, status, text)
        with pytest.raises(docker.errors.NotFound):
            guarded.client.api.inspect_container(name)
        status, text = control.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)
        assert status == 201, (host_port, text)
        stored = control.client.api.inspect_container(name)["HostConfig"]["PortBindings"]
        assert stored == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": host_port}]}
    name = unique("ports")
    guarded.names.append(name)
    body = json.dumps({"Image": IMAGE, "Cmd": ["sleep", "300"], "HostConfig": {
        "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1024-2000"}]}}}).encode()
    status, text = guarded.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)
    assert status == 201, text  # all above 1023: allowed
