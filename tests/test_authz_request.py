"""Reading requests as dockerd reads them (pure; the engine-side proof is test_authz*.py).

The start-time tests feed recorded ``docker inspect`` output (tests/data/inspect.json)
through a fake engine: the decision at start is the policy's verdict on what dockerd stored.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from covenant.authz import decide_request
from covenant.authz.gojson import AmbiguousError, DecodeError, decode, fold, plain
from covenant.authz.model import container_of_create
from covenant.authz.route import RouteError, route, version_less
from covenant.authz.types import CONTAINER_CREATE, EXEC_CREATE
from covenant.engine import EngineLookupError, EngineNotFoundError
from covenant.policy import parse_policy

POLICY = parse_policy("ops:\n  privileged: yes\n  cap_drop_required: no\n  security_opt_required: no\n"
                      "allowed_plugins: ['docker.io/vieux/sshfs:*']\n")
INLINE_BIND = {"type": "none", "o": "bind", "device": "/etc"}
RECORDED = json.loads((Path(__file__).parent / "data" / "inspect.json").read_text())


class FakeEngine:
    """Answers with recorded inspect output; anything unknown raises, as dockerd's 404."""

    def __init__(self, containers: dict | None = None, execs: dict | None = None,
                 volumes: dict | None = None) -> None:
        self.containers = containers or {}
        self.execs = execs or {}
        self.volumes = volumes or {}

    def container(self, ref):
        if ref not in self.containers:
            raise EngineNotFoundError(f"no such container: {ref}")
        return self.containers[ref]

    def volume(self, name):
        if name not in self.volumes:
            raise EngineNotFoundError(f"no such volume: {name}")
        return self.volumes[name]

    def exec(self, exec_id):
        return self.execs[exec_id]

    def plugin(self, ref):
        return {"Name": ref, "PluginReference": {"sshfs": "docker.io/vieux/sshfs:latest",
                                                 "local": "vieux/sshfs:latest"}.get(ref, ref)}

    def network(self, ref):
        return {"Name": {"abc123": "host"}.get(ref, ref)}

    def service(self, ref):
        previous = {"Name": ref, "TaskTemplate": {"ContainerSpec": {"Image": "x", "CapabilityAdd": ["ALL"]}}}
        return {"Spec": {}, "PreviousSpec": previous} if ref == "rolled" else {"Spec": {}}

    def api_version(self):
        return "1.45"

    def host_path(self, path):
        return {"/srv/innocent": "/etc"}.get(path, path)  # a symbolic link on the engine's host

    def image_scan(self, container):
        return None  # no scanner configured


def named(case: str, name: str) -> dict:
    return {**RECORDED[case], "Name": "/" + name}


ENGINE = FakeEngine(
    containers={"web": named("compliant", "web"), "bad": named("privileged", "bad"),
                "ops": named("privileged", "ops"), "abc": named("default", "abc")},
    execs={"e-priv": {"ProcessConfig": {"privileged": True}, "ContainerID": "web"},
           "e-priv-ops": {"ProcessConfig": {"privileged": True}, "ContainerID": "ops"},
           "e-plain": {"ProcessConfig": {"privileged": False}, "ContainerID": "web"}})


def req(uri: str, body: str | None = None, method: str = "POST", **extra) -> dict:
    out = {"RequestMethod": method, "RequestUri": uri, "User": "", **extra}
    if body is not None:
        out["RequestBody"] = base64.b64encode(body.encode()).decode()
    return out


def decide(uri: str, body: str | None = None, **kw):
    return decide_request(POLICY, req(uri, body, **kw), ENGINE)


def hc(body: str, name: str = "a") -> dict:
    return container_of_create(decode(body.encode(), CONTAINER_CREATE), name)["HostConfig"]


# -- Go's encoding/json ---------------------------------------------------------------------

def test_keys_fold_as_go_folds_them():
    assert hc('{"hostconfig": {"privileged": true}}')["Privileged"] is True
    assert hc('{"HostConfig": {"\\u017fecurityOpt": ["x"]}}')["SecurityOpt"] == ["x"]  # long s
    assert hc('{"HostConfig": {"\\u212aernelMemory": 1, "Privileged": true}}')["Privileged"] is True
    # casefold() maps the ligature "st" to "st"; Go does not: the key matches nothing
    assert "SecurityOpt" not in hc('{"HostConfig": {"\\ufb06ecurityOpt": ["x"]}}')
    assert fold("Privileged") == fold("pRIVILEGED") != fold("Privileg\u00e9d")


def test_null_leaves_bools_and_strings_unchanged_and_resets_slices():
    got = hc('{"HostConfig": {"Privileged": true, "privileged": null, "NetworkMode": "host", '
             '"NetworkMode": null, "CapAdd": ["ALL"], "CapAdd": null}}')
    assert got["Privileged"] is True and got["NetworkMode"] == "host" and got["CapAdd"] is None


def test_a_repeated_array_decodes_into_the_first_arrays_elements():
    got = hc('{"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}], '
             '"Mounts": [{"Target": "/y"}]}}')
    assert got["Mounts"] == [{"Type": "bind", "Source": "/etc", "Target": "/y"}]
    assert hc('{"HostConfig": {"Binds": ["/:/h", "/etc:/e"], "Binds": ["/tmp:/t"]}}')["Binds"] == ["/tmp:/t"]
    assert hc('{"HostConfig": {"Binds": ["/:/h"], "Binds": [null]}}')["Binds"] == ["/:/h"]  # null: unchanged
    assert hc('{"HostConfig": {"Binds": ["/:/h"], "Binds": []}}')["Binds"] == []


def test_leftover_slice_elements_are_not_guessed():
    with pytest.raises(AmbiguousError):
        decode(b'{"HostConfig": {"Binds": ["/a:/a", "/:/h"], "Binds": ["/b:/b"], "Binds": ["/c:/c", null]}}',
               CONTAINER_CREATE)


def test_repeated_objects_merge():
    got = hc('{"HostConfig": {"Privileged": true}, "HostConfig": {"CapDrop": ["ALL"]}}')
    assert got["Privileged"] is True and got["CapDrop"] == ["ALL"]


def test_strslice_takes_a_string_and_replaces_whole():
    assert hc('{"HostConfig": {"CapAdd": "all"}}')["CapAdd"] == ["all"]
    replaced = hc('{"HostConfig": {"CapAdd": ["SYS_ADMIN", "NET_RAW"], "CapAdd": ["CHOWN"]}}')
    assert replaced["CapAdd"] == ["CHOWN"]


def test_top_level_host_config_and_fallbacks():
    assert hc('{"Image": "x", "Privileged": true}')["Privileged"] is True
    assert "Privileged" not in hc('{"Privileged": true, "HostConfig": {"CapDrop": ["ALL"]}}')
    assert hc('{"Memory": 5, "HostConfig": {"CapDrop": ["ALL"]}}')["Memory"] == 5
    assert hc('{"Cpuset": "0", "HostConfig": {}}')["CpusetCpus"] == "0"


@pytest.mark.parametrize("body", [
    '{"HostConfig": {"Privileged": "yes"}}',  # wrong type: dockerd answers 400
    '{"HostConfig": {"Memory": 1.5}}', '{"HostConfig": {"Memory": 1e3}}',
    '{"HostConfig": {"Memory": 99999999999999999999}}', '{"HostConfig": {"CapAdd": 5}}',
    '{"HostConfig": NaN}', "[1]", "{", '{"a": ' * 5000 + "1" + "}" * 5000,
    '{"HostConfig": {"Memory": ' + "9" * 5000 + "}}",
])
def test_bodies_dockerd_refuses_raise(body):
    with pytest.raises(DecodeError):
        decode(body.encode(), CONTAINER_CREATE)


def test_only_the_first_value_is_read_and_unknown_keys_ignored():
    assert plain(decode(b'{"Privileged": true, "Bogus": [1]} {"x"', EXEC_CREATE)) == {"Privileged": True}


# -- routing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "kind", "name"), [
    ("/v1.41/containers/create?name=a", "container_create", ""),
    ("/v1.41.0/containers/x/start", "container_start", "x"),
    ("/v1..41/containers/x/start", "container_start", "x"),
    ("/containers/x/restart", "container_restart", "x"),
    ("http://docker/v1.41/containers/%63reate", "container_create", ""),
    ("HTTP://docker/containers/x/start", "container_start", "x"),
    ("/v1.41/containers/a%2Fb/start", "container_start", "a/b"),
    ("/v1.41/exec/e1/start", "exec_start", "e1"),
    ("/v1.41/containers/x/update", "container_update", "x"),
    ("/v1.41/services/s/update?version=3", "service_update", "s"),
    ("/v1.41/plugins/sshfs/enable?timeout=0", "plugin_enable", "sshfs"),
    ("/v1.41/containers/create/", "other", ""),
    ("/v1.41/containers/x/start#frag", "other", ""),
])
def test_routes_as_dockerd_matches_them(uri, kind, name):
    got = route(uri)
    assert (got.kind, got.name) == (kind, name)


@pytest.mark.parametrize("uri", [
    "/v1.41//containers/create", "/v1.41/containers/x/../y/start", "containers/x/start",
    "/v1.41/containers/%zz/start", "/v1.41/containers/create?name=a;b", "http:opaque"])
def test_targets_dockerd_would_not_route_raise(uri):
    with pytest.raises(RouteError):
        route(uri)


def test_versions_compare_as_moby_does():
    assert version_less("1.23.9", "1.24") and version_less("01.023", "1.24") and version_less("", "1.24")
    assert not version_less("1.24.0", "1.24") and not version_less("1.41", "1.24")
    assert not version_less("1." + "9" * 30, "1.24")  # overflow clamps to the largest int


# -- decisions ------------------------------------------------------------------------------

def test_create_is_judged_by_name_from_the_query():
    body = '{"Image": "x", "HostConfig": {"Privileged": true}}'
    assert decide("/v1.41/containers/create?name=ops", body).allow
    denied = decide("/v1.41/containers/create?name=web", body)
    assert not denied.allow and denied.msg.startswith("[CV001] web: privileged set but not allowed; [CV002]")
    assert decide("/v1.41/containers/%63reate?name=%77eb", body).name == "web"


def test_start_and_restart_decide_from_the_stored_container():
    assert decide("/v1.41/containers/web/start").allow
    assert decide("/v1.41/containers/ops/start").allow  # privileged, and its section allows it
    for uri in ("/v1.41/containers/bad/start", "/v1.41.0/containers/bad/start", "/containers/bad/restart",
                "http://x/v1.41/containers/b%61d/start"):
        got = decide(uri)
        assert not got.allow and got.violations[0].check == "CV001", uri
    with pytest.raises(EngineNotFoundError):  # a failed lookup raises: the server denies
        decide("/v1.41/containers/missing/start")


@pytest.mark.parametrize("body", ['{"Privileged": true}', "{ }x", '{"HostConfig": {}}', "[]"])
def test_start_with_a_body_is_refused(body):
    assert not decide("/v1.41/containers/web/start", body).allow


@pytest.mark.parametrize("body", [None, "", "{}", "null", " {} "])
def test_start_with_an_empty_body_is_judged(body):
    assert decide("/v1.41/containers/web/start", body).allow


@pytest.mark.parametrize("version", ["1.23", "1.23.99", "01.12", "1..23"])
def test_start_through_an_api_before_1_24_is_refused(version):
    assert not decide(f"/v{version}/containers/web/start").allow


def test_exec_start_decides_from_the_stored_exec():
    assert decide("/v1.41/exec/e-plain/start", "{}").allow
    assert decide("/v1.41/exec/e-priv-ops/start", "{}").allow
    denied = decide("/v1.41/exec/e-priv/start", '{"Detach": true}')
    assert not denied.allow and "[CV001] web: privileged exec not allowed" in denied.msg


STRICT_USER = parse_policy("profile: strict\nroot-ok:\n  non_root_required: no\n")


@pytest.mark.parametrize(("user", "allowed"), [
    ("", True), ("1000", True), ("nobody", True), ("1000:0", True),
    ("0", False), ("root", False), ("0:0", False), ("00", False), ("+0", False), ("-0", False),
    ("root:1000", False)])
def test_exec_as_root_into_a_non_root_container(user, allowed):
    """runc reads a numeric user as Go's strconv.Atoi does: 00, +0 and -0 are uid 0."""
    hardened = named("hardened", "app")  # Config.User 1000:1000
    engine = FakeEngine(containers={"app": hardened, "root-ok": named("hardened", "root-ok")},
                        execs={"e": {"ProcessConfig": {"privileged": False, "user": user},
                                     "ContainerID": "app"},
                               "e2": {"ProcessConfig": {"privileged": False, "user": user},
                                      "ContainerID": "root-ok"}})
    start = decide_request(STRICT_USER, req("/v1.41/exec/e/start", "{}"), engine)
    create = decide_request(STRICT_USER, req("/v1.41/containers/app/exec",
                                             json.dumps({"Cmd": ["id"], "User": user})), engine)
    assert start.allow is allowed and create.allow is allowed, (start.msg, create.msg)
    if not allowed:
        assert start.msg == f"[CV027] app: exec as root ({user}) not allowed"
    assert decide_request(STRICT_USER, req("/v1.41/exec/e2/start", "{}"), engine).allow


def running(case: str, name: str, execs: tuple[str, ...] = ()) -> dict:
    return {**named(case, name), "State": {"Running": True}, "ExecIDs": list(execs)}


def test_a_running_container_is_judged_under_its_new_name():
    engine = FakeEngine(
        containers={"ops": running("privileged", "ops"), "web": running("compliant", "web", ("e1",)),
                    "waiting": running("compliant", "waiting", ("e2",)), "calm": running("compliant", "calm"),
                    "busy": running("compliant", "busy", tuple(f"e{i}" for i in range(65))),
                    "stopped": named("privileged", "stopped")},
        execs={"e1": {"Running": True, "ProcessConfig": {"privileged": True}},
               "e2": {"Running": False, "ExitCode": None, "ProcessConfig": {"privileged": True}}})

    def rename(ref: str, new: str):
        return decide_request(POLICY, req(f"/v1.41/containers/{ref}/rename?name={new}"), engine)

    denied = rename("ops", "evil")
    assert not denied.allow and denied.msg.startswith("[CV001] evil: privileged set but not allowed")
    assert rename("ops", "ops").allow
    denied = rename("web", "web2")  # a privileged exec runs in it
    assert not denied.allow and "[CV001] web2: privileged exec not allowed" in denied.msg
    assert rename("web", "ops").allow
    assert not rename("waiting", "waiting2").allow  # created, not yet started: it could start
    assert rename("calm", "calm2").allow  # dockerd lists no ended exec
    assert "more than 64 execs" in rename("busy", "busy2").msg
    # a stopped one too: a restart in flight would start it under the new name
    assert not rename("stopped", "evil").allow and rename("stopped", "ops").allow


FORM = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "3"}


@pytest.mark.parametrize("uri", ["/v1.41/containers/web/start", "/v1.41/containers/web/restart?t=1",
                                 "/v1.41/containers/web/rename?name=web2"])
def test_a_body_the_plugin_was_not_sent_is_refused_where_dockerd_reads_it_late(uri):
    """dockerd's ParseForm reads a form body after the plugin answered (the client picks
    when), and its values win over the query's."""
    assert not decide(uri, RequestHeaders=FORM).allow
    assert not decide(uri, RequestHeaders={"Content-Type": "text/plain"}).allow  # chunked: no length
    assert decide(uri, RequestHeaders={"Content-Type": "application/json", "Content-Length": "0"}).allow
    assert decide(uri, RequestHeaders={}).allow  # no Content-Type: no handler reads a body
    assert decide(uri, "{}", RequestHeaders={"Content-Type": "application/json", "Content-Length": "2"}).allow


def test_a_hex_reference_to_a_container_that_removes_itself_is_refused():
    """``--rm``: the container may vanish before dockerd resolves the reference, which
    then falls through to another container's id prefix."""
    rm = {**named("compliant", "cafe"), "HostConfig": {**named("compliant", "cafe")["HostConfig"],
                                                     "AutoRemove": True}}
    full = rm["Id"]
    engine = FakeEngine(containers={"cafe": rm, full[:12]: rm, full: rm, "web": named("compliant", "web")})
    for kind in ("start", "restart", "rename?name=x", "update"):
        body = '{"CpuShares": 512}' if kind == "update" else None
        assert not decide_request(POLICY, req(f"/v1.41/containers/cafe/{kind}", body), engine).allow, kind
        assert not decide_request(POLICY, req(f"/v1.41/containers/{full[:12]}/{kind}", body), engine).allow
        assert decide_request(POLICY, req(f"/v1.41/containers/{full}/{kind}", body), engine).allow, kind
        assert decide_request(POLICY, req(f"/v1.41/containers/web/{kind}", body), engine).allow, kind


def test_exec_create_refuses_early():
    assert not decide("/v1.41/containers/web/exec", '{"Cmd": ["sh"], "privileged": true}').allow
    assert not decide("/v1.41/containers/web/exec", '{"Cmd": ["sh"], "\\u017frivileged": false, '
                      '"Privileged": true, "privileged": null}').allow
    assert decide("/v1.41/containers/web/exec", '{"Cmd": ["sh"], "Privileged": false}').allow
    assert decide("/v1.41/containers/ops/exec", '{"Cmd": ["sh"], "Privileged": true}').allow
    assert decide("/v1.41/containers/web/exec").malformed  # no body to read


def test_update_is_judged_on_the_container_as_updated():
    strict = parse_policy("profile: cis\nhh:\n  apparmor_required: no\n")
    engine = FakeEngine({"hh": named("hardened", "hh")})
    ok = decide_request(strict, req("/v1.41/containers/hh/update", '{"CpuShares": 256}'), engine)
    assert ok.allow, ok.msg
    always = '{"RestartPolicy": {"Name": "always"}}'
    worse = decide_request(strict, req("/v1.41/containers/hh/update", always), engine)
    assert not worse.allow and worse.violations[0].check == "CV018"


def test_services_are_judged_as_their_task_containers():
    def service(spec: dict) -> str:
        return json.dumps({"Name": "svc", "TaskTemplate": {"ContainerSpec": {"Image": "x", **spec}}})
    assert not decide("/v1.41/services/create", service({})).allow  # original policy: no cap drop
    ok = service({"CapabilityDrop": ["ALL"], "Privileges": {"NoNewPrivileges": True}})
    assert decide("/v1.45/services/create", ok).allow
    assert not decide("/v1.41/services/create", ok).allow  # NoNewPrivileges needs API 1.44
    assert not decide("/v1.40/services/create", service({"CapabilityDrop": ["ALL"], "Privileges": {
        "SELinuxContext": {"User": "u"}}})).allow  # CapabilityDrop needs API 1.41
    volume = {"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Options": INLINE_BIND}}}
    inline = service({"CapabilityDrop": ["ALL"], "Mounts": [volume]})
    got = decide_request(parse_policy("profile: cis\n"), req("/v1.41/services/create", inline), ENGINE)
    assert "CV007" in {v.check for v in got.violations}
    cis = parse_policy("profile: cis\n")
    etc = {"Type": "bind", "Source": "/etc", "Target": "/e"}
    bind = service({"CapabilityDrop": ["ALL"], "Mounts": [etc]})
    got = decide_request(cis, req("/v1.41/services/create", bind), ENGINE)
    assert "CV007" in {v.check for v in got.violations}
    host = json.dumps({"Name": "svc", "TaskTemplate": {"ContainerSpec": {"Image": "x"},
                                                       "Networks": [{"Target": "abc123"}]}})
    assert "CV010" in {v.check for v in decide_request(cis, req("/v1.41/services/create", host),
                                                       ENGINE).violations}
    plugin = json.dumps({"Name": "p", "TaskTemplate": {"Runtime": "plugin",
                                                       "PluginSpec": {"Remote": "evil/plugin"}}})
    assert not decide("/v1.41/services/create", plugin).allow
    # dockerd makes a container task for a Runtime of "" or "container", PluginSpec or not
    wide = {"Image": "x", "CapabilityAdd": ["ALL"]}
    for runtime in ("", "container"):
        task = {"Runtime": runtime, "PluginSpec": {"Remote": "vieux/sshfs"}, "ContainerSpec": wide}
        both = json.dumps({"Name": "p", "TaskTemplate": task})
        denied = decide("/v1.41/services/create", both)
        assert not denied.allow and "[CV004]" in denied.msg, (runtime, denied.msg)


def test_published_ports_of_a_service_are_judged_as_bindings_on_every_interface():
    ports = parse_policy("'*':\n  privileged_ports_forbidden: yes\n  host_ip_required: yes\n"
                         "  cap_drop_required: no\n  security_opt_required: no\n")
    for mode in ("host", "ingress", ""):
        body = json.dumps({"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "x"}}, "EndpointSpec": {
            "Ports": [{"TargetPort": 80, "PublishedPort": 80, "PublishMode": mode}]}})
        denied = decide_request(ports, req("/v1.41/services/create", body), ENGINE)
        assert {v.check for v in denied.violations} == {"CV008", "CV009"}, (mode, denied.msg)
    quiet = json.dumps({"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "x"}}})
    assert decide_request(ports, req("/v1.41/services/create", quiet), ENGINE).allow


def test_a_rollback_is_judged_on_the_spec_it_restores():
    denied = decide("/v1.41/services/rolled/update?version=3&rollback=previous", "{}")
    assert not denied.allow and "[CV004]" in denied.msg
    with pytest.raises(Exception, match="no previous spec"):
        decide("/v1.41/services/fresh/update?version=3&rollback=previous", "{}")


def test_plugins_need_an_allowed_reference():
    assert decide("/v1.41/plugins/pull?remote=vieux/sshfs&name=sshfs", "[]").allow
    assert not decide("/v1.41/plugins/pull?remote=evil/plugin", "[]").allow
    assert not decide("/v1.41/plugins/create?name=mine").allow
    assert decide("/v1.41/plugins/sshfs/enable?timeout=0").allow
    assert not decide("/v1.41/plugins/mine/enable").allow
    assert not decide("/v1.41/plugins/local/enable").allow  # created locally under an allowed name
    assert not decide("/v1.41/plugins/create?name=docker.io/vieux/sshfs:latest").allow
    assert not decide("/v1.41/plugins/mine/set", '["m.source=/"]').allow
    assert not decide("/v1.41/plugins/sshfs/upgrade?remote=evil/plugin", "[]").allow


def test_builds_and_volumes_are_judged_by_what_they_map_to():
    cis = parse_policy("profile: cis\n")
    assert not decide_request(cis, req("/v1.41/build?networkmode=host&t=x"), ENGINE).allow
    assert not decide_request(cis, req("/v1.41/build?cgroupparent=/x"), ENGINE).allow
    # RUN steps can drop no capability, set no security option, limit no PIDs: judged so
    refused = decide_request(cis, req("/v1.41/build?t=x"), ENGINE)
    assert {"CV002", "CV003", "CV025"} <= {v.check for v in refused.violations}, refused.msg
    assert refused.msg.startswith("[CV002] build (its RUN steps): all capabilities not dropped")
    lenient = parse_policy("'*':\n  cap_drop_required: no\n  security_opt_required: no\n")
    assert decide_request(lenient, req("/v1.41/build?t=x&memory=1e9&cpushares=x"), ENGINE).allow
    limited = parse_policy("'*':\n  cap_drop_required: no\n  security_opt_required: no\n"
                           "  memory_limit_required: yes\n")
    assert not decide_request(limited, req("/v1.41/build?memory=1e9"), ENGINE).allow  # not an integer: 0
    assert decide_request(limited, req("/v1.41/build?memory=%2B1000000000"), ENGINE).allow
    form = req("/v1.41/build?t=x", RequestHeaders={"Content-Type": "application/x-www-form-urlencoded"})
    assert not decide_request(cis, form, ENGINE).allow
    etc = '{"Name": "v", "Driver": "local", "DriverOpts": {"type": "none", "o": "bind", "device": "/etc"}}'
    got = decide_request(cis, req("/v1.41/volumes/create", etc), ENGINE)
    assert not got.allow and got.msg == "[CV007] volume v: sensitive host directory mounted read-write: /etc"
    ro = etc.replace('"bind"', '"bind,ro"')
    assert decide_request(cis, req("/v1.41/volumes/create", ro), ENGINE).allow
    assert decide_request(cis, req("/v1.41/volumes/create", '{"Name": "plain"}'), ENGINE).allow
    relative = etc.replace('"/etc"', '"etc"')  # resolved against dockerd's working directory
    assert not decide_request(cis, req("/v1.41/volumes/create", relative), ENGINE).allow
    srv_only = parse_policy("'*':\n  bind_mount_prefixes: [/srv]\n")
    block = '{"Name": "b", "DriverOpts": {"type": "ext4", "device": "/dev/sda1"}}'
    got = decide_request(srv_only, req("/v1.41/volumes/create", block), ENGINE)
    assert got.msg == "[CV028] volume b: bind mount outside the allowed host paths: /dev/sda1"
    overlay = '{"Name": "o", "DriverOpts": {"type": "overlay", "o": "lowerdir=/l,upperdir=/etc"}}'
    assert not decide_request(cis, req("/v1.41/volumes/create", overlay), ENGINE).allow


def test_inline_volume_options_at_create_are_a_bind():
    mount = {"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "local",
                                                                                 "Options": INLINE_BIND}}}
    body = json.dumps({"Image": "x", "HostConfig": {"Mounts": [mount]}})
    cis = parse_policy("profile: cis\n")
    got = decide_request(cis, req("/v1.41/containers/create?name=ab", body), ENGINE)
    assert "CV007" in {v.check for v in got.violations}


@pytest.mark.parametrize("request_", [{}, {"RequestMethod": "POST"}, {"RequestUri": "/containers/create"},
                                      {"RequestMethod": "POST", "RequestUri": "/containers/create",
                                       "RequestBody": "!!!"}])
def test_requests_without_a_method_uri_or_readable_body_raise(request_):
    with pytest.raises(ValueError):
        decide_request(POLICY, request_, ENGINE)


def test_reads_are_allowed():
    assert decide("/v1.41/containers/json", method="GET").allow


ETC_VOLUME = {"Name": "etcvol", "Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}}


def test_the_plugin_resolves_volumes_and_referenced_containers_as_the_daemon_does():
    """A named volume that binds /etc, or a namespace borrowed from a container that has
    the host's, is judged for what it reaches, at create and at start alike."""
    cis = parse_policy("profile: cis\n")
    hostpid = {**named("compliant", "hostpid"), "HostConfig": {"PidMode": "host"}}
    stored = {**named("compliant", "withvol"), "Mounts": [
        {"Type": "volume", "Name": "etcvol", "Driver": "local", "Destination": "/x", "RW": True,
         "Source": "/var/lib/docker/volumes/etcvol/_data"}]}
    engine = FakeEngine(containers={"hostpid": hostpid, "withvol": stored}, volumes={"etcvol": ETC_VOLUME})

    def checks(uri: str, body: str | None = None) -> set[str]:
        return {v.check for v in decide_request(cis, req(uri, body), engine).violations}

    create = '{"Image": "x", "HostConfig": {"Binds": ["etcvol:/x"]}}'
    assert "CV007" in checks("/v1.41/containers/create?name=a", create)
    assert "CV007" not in checks("/v1.41/containers/create?name=a", create.replace("etcvol", "fresh"))
    assert "CV011" in checks("/v1.41/containers/create", '{"Image": "x", "HostConfig": {"PidMode": '
                                                          '"container:hostpid"}}')
    assert "CV007" in checks("/v1.41/containers/withvol/start")


def test_a_lookup_that_fails_for_another_reason_than_not_found_is_a_deny():
    class Broken(FakeEngine):
        def volume(self, name):
            raise EngineLookupError("timed out")

    with pytest.raises(EngineLookupError):
        decide_request(POLICY, req("/v1.41/containers/create", '{"Image": "x", "HostConfig": {"Binds": '
                                                                '["v:/x"]}}'), Broken())


def test_a_bind_through_a_symbolic_link_is_judged_as_where_it_leads():
    policy = parse_policy("profile: cis\n")
    verdict = decide_request(policy, req("/v1.41/containers/create?name=web", '{"Image": "x", "HostConfig": '
                                         '{"Binds": ["//srv/./innocent:/x"]}}'), ENGINE)
    assert not verdict.allow
    assert "sensitive host directory mounted read-write: /etc (through the link /srv/innocent)" in verdict.msg
    other = decide_request(policy, req("/v1.41/containers/create?name=web", '{"Image": "x", "HostConfig": '
                                       '{"Binds": ["/srv/other:/x"]}}'), ENGINE)
    assert "CV007" not in other.msg and "/srv/other" not in other.msg
