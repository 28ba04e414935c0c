"""What a container can reach (issue 10), on recorded `docker inspect` JSON widened by hand
with what an engine reports: named volumes that bind, borrowed namespaces, device rules,
/proc masks, security options as dockerd parses them, and the CIS items added."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from covenant.audit import catalogue
from covenant.checks import CATALOGUE, DEFAULTS, PROFILES, evaluate
from covenant.policy import PolicyError, parse_policy
from covenant.reach import Lookups, bind_sources, clean_path, reaches, references, volume_sources, widen

RECORDED = json.loads((Path(__file__).parent / "data" / "inspect.json").read_text())
ALL_ON = {**DEFAULTS, **{k: True for k, v in DEFAULTS.items() if v is False and k != "privileged"}}
STRICT = {**DEFAULTS, **PROFILES["strict"]}
CIS = {**DEFAULTS, **PROFILES["cis"]}


def compliant(**host_config) -> dict:
    """The recorded compliant container (cap-drop ALL, no-new-privileges), changed."""
    c = copy.deepcopy(RECORDED["compliant"])
    c["HostConfig"].update(host_config)
    return c


def with_mounts(*mounts) -> dict:
    c = compliant()
    c["Mounts"] = [dict(m) for m in mounts]
    return c


def bind(source, rw=True, destination="/h"):
    return {"Type": "bind", "Source": source, "Destination": destination, "RW": rw, "Propagation": "rprivate",
            "Mode": ""}


def volume(name, rw=True, driver="local", destination="/v"):
    return {"Type": "volume", "Name": name, "Source": f"/var/lib/docker/volumes/{name}/_data",
            "Destination": destination, "Driver": driver, "Mode": "z", "RW": rw, "Propagation": ""}


def found(container, settings=STRICT, lookups=None) -> dict[str, str]:
    return {v.check: v.message for v in evaluate(container, settings, (), lookups)[0]}


# -- 1. paths as the kernel reads them ---------------------------------------------------------

@pytest.mark.parametrize(("path", "clean"), [
    ("//etc", "/etc"), ("///etc", "/etc"), ("/etc/", "/etc"), ("/./etc", "/etc"), ("/usr/../etc", "/etc"),
    ("//etc//shadow/", "/etc/shadow"), ("/", "/"), ("//", "/"), ("/..", "/"), ("dev/sda1", "/dev/sda1"),
])
def test_paths_are_cleaned_as_the_kernel_sees_them(path, clean):
    assert clean_path(path) == clean


# -- 2. sensitive host paths ---------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "/etc", "//etc", "/etc/", "/etc/shadow", "/usr/bin", "/boot", "/dev/sda", "/lib/modules", "/sys/kernel",
    "/proc", "/proc/1/root", "/proc/self/root", "/", "//", "/var/lib/docker", "/var/lib/docker/volumes",
    "/var", "/var/lib", "/root", "/root/.ssh", "/run", "/var/run", "/run/docker", "/run/docker.sock",
    "/var/run/docker.sock", "/bin", "/sbin/", "/lib64",
])
def test_sensitive_read_write_binds_violate_cv007(source):
    assert "CV007" in found(with_mounts(bind(source)))
    assert "CV007" not in found(with_mounts(bind(source, rw=False)))  # read-only is CIS 5.5's line


@pytest.mark.parametrize("source", ["/srv/data", "/home/app", "/variable", "/etcetera", "/usr2", "/tmp/x",
                                    "/var/tmp", "/var/lib/dockerd", "/opt", "/mnt/usb"])
def test_other_binds_are_not_sensitive(source):
    assert "CV007" not in found(with_mounts(bind(source)))


def test_root_is_sensitive_only_as_a_bind_of_root():
    assert reaches("/", "/") and reaches("/", "/etc")
    assert not reaches("/srv", "/")


def test_the_message_names_the_cleaned_source():
    assert found(with_mounts(bind("//etc/"), bind("/usr/bin")))["CV007"] == (
        "compliant: sensitive host directory mounted read-write: /etc, /usr/bin")


@pytest.mark.parametrize("source", ["/run", "/var/run/", "/run/docker", "/run/docker/plugins", "/", "/var",
                                    "/srv/elsewhere/docker.sock", "//var/run/docker.sock"])
def test_what_reaches_the_engine_violates_cv026_even_read_only(source):
    assert "CV026" in found(with_mounts(bind(source, rw=False)))


@pytest.mark.parametrize("source", ["/run/user/1000", "/srv", "/var/lib/app", "/run/dockerish"])
def test_what_does_not_reach_the_engine(source):
    assert "CV026" not in found(with_mounts(bind(source, rw=False)))


def test_policy_extends_the_sensitive_paths():
    policy = parse_policy("compliant:\n  sensitive_mounts_forbidden: yes\n"
                          "  sensitive_paths: [/srv/secrets, /data/]\n")
    assert [v.check for v in policy.decide(with_mounts(bind("/srv/secrets/db"))).violations] == ["CV007"]
    assert [v.check for v in policy.decide(with_mounts(bind("/data"))).violations] == ["CV007"]
    assert [v.check for v in policy.decide(with_mounts(bind("/srv"))).violations] == ["CV007"]  # holds it
    assert policy.decide(with_mounts(bind("/srv/public"))).allowed
    assert parse_policy("compliant:\n  sensitive_mounts_forbidden: yes\n").decide(
        with_mounts(bind("/srv/secrets/db"))).allowed


@pytest.mark.parametrize(("text", "line", "words"), [
    ("web:\n  sensitive_paths: [srv/secrets]\n", 2, "web.sensitive_paths: expected absolute host paths, "
                                                   "got 'srv/secrets'"),
    ("debug: no\nweb:\n  privileged: no\n  sensitive_paths: /srv\n", 4,
     "web.sensitive_paths: expected a list of strings"),
    ("web:\n  bind_mount_prefixes: [/srv, data]\n", 2,
     "web.bind_mount_prefixes: expected absolute host paths"),
])
def test_path_lists_are_validated_with_file_and_line(text, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yml")
    assert str(err.value).startswith(f"p.yml:{line}: ") and words in str(err.value)


def test_bind_prefixes_compare_cleaned_paths():
    settings = {**DEFAULTS, "bind_mount_prefixes": ["/srv/data"]}
    assert "CV028" not in found(with_mounts(bind("//srv/data/x")), settings)
    assert "CV028" in found(with_mounts(bind("/srv/data/../../etc")), settings)


# -- 3. named volumes that are binds in disguise ---------------------------------------------------

BIND_ETC = {"Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}}


@pytest.mark.parametrize("options", [
    {"type": "none", "o": "bind", "device": "/etc"},
    {"type": "none", "o": "rbind", "device": "//etc/"},
    {"o": "bind,rw", "device": "/"},
    {"type": "ext4", "device": "/dev/sda1"},
    {"type": "ext4", "device": "dev/sda1"},  # relative: from dockerd's working directory, /
    {"type": "overlay", "o": "lowerdir=/srv/l,upperdir=/etc,workdir=/srv/w"},
    {"type": "proc", "device": "proc"},
    {"type": "sysfs", "device": "sysfs"},
])
def test_a_local_volume_that_binds_a_sensitive_path_violates_cv007(options):
    container = with_mounts(volume("sneaky"))
    lookups = Lookups(volumes={"sneaky": {"Driver": "local", "Options": options}})
    assert "CV007" in found(container, lookups=lookups)
    assert "CV007" not in found(container)  # without the engine's answer it is a plain volume


def test_volume_bind_messages_name_the_volume_and_every_check_sees_it():
    container = with_mounts(volume("etcvol"), volume("runvol", rw=False, destination="/r"))
    lookups = Lookups(volumes={"etcvol": BIND_ETC,
                               "runvol": {"Driver": "local", "Options": {"o": "bind", "device": "/run"}}})
    settings = {**STRICT, "bind_mount_prefixes": ["/srv"]}
    got = found(container, settings, lookups)
    assert got["CV007"] == "compliant: sensitive host directory mounted read-write: /etc (volume etcvol)"
    assert got["CV026"] == "compliant: Docker socket mounted: /run (volume runvol)"
    assert got["CV028"] == ("compliant: bind mount outside the allowed host paths: /etc (volume etcvol), "
                            "/run (volume runvol)")


@pytest.mark.parametrize("looked_up", [
    {"Driver": "local", "Options": {"o": "bind,ro", "device": "/etc"}},  # the volume itself read-only
    {"Driver": "local", "Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}},
    {"Driver": "local", "Options": {"type": "nfs", "o": "addr=192.0.2.1", "device": ":/export"}},
    {"Driver": "local", "Options": None},
    {"Driver": "local", "Options": {}},
    {"Driver": "rexray", "Options": {"o": "bind", "device": "/etc"}},
])
def test_volumes_that_do_not_bind_a_sensitive_path_read_write(looked_up):
    container = with_mounts(volume("v"))
    assert "CV007" not in found(container, lookups=Lookups(volumes={"v": looked_up}))


def test_a_volume_mounted_read_only_is_a_read_only_bind():
    container = with_mounts(volume("etcvol", rw=False))
    got = found(container, {**STRICT, "bind_mount_prefixes": ["/srv"]}, Lookups(volumes={"etcvol": BIND_ETC}))
    assert "CV007" not in got and "CV028" in got


def test_a_configuration_not_created_yet_reads_binds_and_mounts_of_volumes():
    """The plugin's create shape: no Mounts key, volumes named in Binds and HostConfig.Mounts."""
    lookups = Lookups(volumes={"etcvol": BIND_ETC})
    via_binds = {"Name": "/c", "HostConfig": {**compliant()["HostConfig"], "Binds": ["etcvol:/x"]}}
    via_mounts = {"Name": "/c", "HostConfig": {**compliant()["HostConfig"], "Mounts": [
        {"Type": "volume", "Source": "etcvol", "Target": "/x"}]}}
    inline = {"Name": "/c", "HostConfig": {**compliant()["HostConfig"], "Mounts": [
        {"Type": "volume", "Source": "new", "Target": "/x",
         "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": BIND_ETC["Options"]}}}]}}
    for shape in (via_binds, via_mounts):
        assert "CV007" in found(shape, lookups=lookups)
        assert "CV007" not in found(shape)
    assert "CV007" in found(inline)
    assert references(via_binds) == (["etcvol"], [])


def test_volume_sources_for_the_plugin_are_the_cores():
    from covenant.authz import model
    assert model.volume_sources is volume_sources
    assert volume_sources("local", {"o": "bind", "device": "//etc/"})[0]["Source"] == "/etc"


# -- 4. namespaces and volumes borrowed from another container ---------------------------------

def borrowing(**modes) -> dict:
    return compliant(**{field: f"container:{ref}" for field, ref in modes.items()})


@pytest.mark.parametrize(("field", "check", "text"), [
    ("NetworkMode", "CV010", "host network namespace shared"),
    ("PidMode", "CV011", "host PID namespace shared"),
    ("IpcMode", "CV012", "host IPC namespace shared"),
    ("UTSMode", "CV013", "host UTS namespace shared"),
])
def test_a_namespace_borrowed_from_a_host_container_is_the_hosts(field, check, text):
    hosty = compliant(**{field: "host"})
    container = borrowing(**{field: "x"})
    got = found(container, lookups=Lookups(containers={"x": hosty}))
    assert got[check] == f"compliant: {text} (through container x)"
    assert check not in found(container, lookups=Lookups(containers={"x": compliant()}))
    assert check not in found(container)  # unresolved: judged on what it declares
    chain = Lookups(containers={"x": borrowing(**{field: "y"}), "y": hosty})
    assert check in found(container, lookups=chain)


def test_a_reference_loop_ends():
    container = borrowing(PidMode="x")
    loop = Lookups(containers={"x": borrowing(PidMode="y"), "y": borrowing(PidMode="x")})
    assert "CV011" not in found(container, lookups=loop)


def test_references_name_what_the_shell_must_look_up():
    container = borrowing(NetworkMode="n", PidMode="p")
    container["HostConfig"]["VolumesFrom"] = ["data:ro", "n"]
    container["Mounts"] = [volume("a"), volume("b", driver="rexray"), bind("/srv"), volume("a")]
    assert references(container) == (["a"], ["n", "p", "data"])
    assert references(RECORDED["compliant"]) == ([], [])


def test_volumes_from_bring_the_other_containers_mounts_before_create():
    other = with_mounts(bind("/etc"), bind("/var/run/docker.sock", destination="/s"))
    create = {"Name": "/c", "HostConfig": {**compliant()["HostConfig"], "VolumesFrom": ["other"]}}
    got = found(create, lookups=Lookups(containers={"other": other}))
    assert {"CV007", "CV026"} <= set(got)
    create["HostConfig"]["VolumesFrom"] = ["other:ro"]
    got = found(create, lookups=Lookups(containers={"other": other}))
    assert "CV007" not in got and "CV026" in got  # a read-only socket still talks to the engine


def test_widen_leaves_its_input_alone_and_is_idempotent():
    container = borrowing(PidMode="x")
    before = copy.deepcopy(container)
    lookups = Lookups(containers={"x": compliant(PidMode="host")})
    once = widen(container, lookups)
    assert container == before
    assert widen(once) == once and once["HostConfig"]["PidMode"] == "host"


# -- 5. devices, /proc, privileged ---------------------------------------------------------------

@pytest.mark.parametrize("rule", ["a *:* rwm", "b 8:* rw", "c 1:3 mr"])
def test_device_cgroup_rules_expose_host_devices(rule):
    assert found(compliant(DeviceCgroupRules=[rule]))["CV019"] == (
        f"compliant: host devices exposed: cgroup rule '{rule}'")


def test_device_requests_expose_host_devices():
    requests = [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]
    assert "CV019" in found(compliant(DeviceRequests=requests))


@pytest.mark.parametrize(("masked", "readonly", "detail"), [
    ([], [], "/proc/kcore unmasked, /proc/sys writable"),  # systempaths=unconfined
    (None, [], "/proc/sys writable"),
    ([], None, "/proc/kcore unmasked"),
    (["/proc/kcore"], ["/proc/bus"], "/proc/sys writable"),
])
def test_unmasked_proc_violates_cv033(masked, readonly, detail):
    got = found(compliant(MaskedPaths=masked, ReadonlyPaths=readonly))
    assert got["CV033"] == f"compliant: /proc paths unmasked: {detail}"


def test_default_proc_masks_comply():
    assert "CV033" not in found(RECORDED["compliant"])
    assert "CV033" not in found(compliant(MaskedPaths=None, ReadonlyPaths=None))  # dockerd's defaults
    assert "CV033" not in found(compliant(ReadonlyPaths=["/proc"], MaskedPaths=["/proc/kcore"]))


def test_a_privileged_container_has_every_device_no_seccomp_no_apparmor_no_masks():
    settings = {**CIS, "privileged": False}
    got = found(RECORDED["privileged"], settings)
    assert got["CV019"] == "privileged: host devices exposed: all (privileged)"
    assert got["CV021"] == "privileged: seccomp unconfined (privileged)"
    assert got["CV005"] == "privileged: no AppArmor profile (unconfined: privileged)"
    assert got["CV033"] == "privileged: /proc paths unmasked: all (privileged)"
    allowed = found(RECORDED["privileged"], {**settings, "privileged": True})
    assert not {"CV001", "CV019", "CV021", "CV033", "CV031"} & set(allowed)
    confined = copy.deepcopy(RECORDED["privileged"])
    confined["AppArmorProfile"] = "docker-default"  # what it is not, yet the check must say so
    assert "CV005" in found(confined, settings)


# -- 6. security options as dockerd reads them ---------------------------------------------------

@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_no_new_privileges_values_go_reads_as_true(value):
    for sep in ("=", ":"):
        container = compliant(SecurityOpt=[f"no-new-privileges{sep}{value}"])
        assert not {"CV003", "CV023"} & set(found(container))


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False", "yes", "TrUe", " true", "",
                                   "true=1"])
def test_no_new_privileges_false_or_unreadable_protects_nothing(value):
    container = compliant(SecurityOpt=[f"no-new-privileges={value}"])
    assert {"CV003", "CV023"} <= set(found(container))


@pytest.mark.parametrize(("options", "protected"), [
    (["no-new-privileges=true", "no-new-privileges=0"], False),
    (["no-new-privileges=false", "no-new-privileges"], True),
    (["no-new-privileges", "no-new-privileges:f"], False),
    (["No-New-Privileges=true"], False),  # dockerd refuses the key in another case
    ([" no-new-privileges"], False),
])
def test_the_last_no_new_privileges_wins(options, protected):
    got = found(compliant(SecurityOpt=options))
    assert ("CV023" not in got) is protected


@pytest.mark.parametrize("option", ["disable", "writable-cgroups=true", "writable-cgroups"])
def test_options_that_only_weaken_are_not_security_options(option):
    assert "CV003" in found(compliant(SecurityOpt=[option]), DEFAULTS)


# -- 7. CIS items ----------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["label=disable", "label:disable", "disable"])
def test_selinux_labels_disabled_violate_cv031(option):
    got = found(compliant(SecurityOpt=["no-new-privileges", option]))
    assert got["CV031"] == "compliant: SELinux labels disabled"


def test_selinux_labels_set_or_added_by_dockerd_pass_cv031():
    assert "CV031" not in found(compliant(SecurityOpt=["no-new-privileges", "label=type:svirt_apache_t"]))
    assert "CV031" not in found(RECORDED["compliant"])
    # dockerd's own label=disable on --pid=host: CV011 says what is wrong
    got = found(compliant(PidMode="host", SecurityOpt=["no-new-privileges", "label=disable"]))
    assert "CV031" not in got and "CV011" in got


def test_ulimit_override_violates_cv032():
    ulimits = [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "nproc", "Soft": 10, "Hard": 10}]
    assert found(compliant(Ulimits=ulimits), CIS)["CV032"] == "compliant: ulimits overridden: nofile, nproc"
    assert "CV032" not in found(compliant(Ulimits=None), CIS)
    assert "CV032" not in found(compliant(Ulimits=[]), CIS)


@pytest.mark.parametrize(("fields", "limited"), [
    ({"CpusetCpus": "0"}, False),  # pinning is not CIS 5.11's shares
    ({"CpuQuota": -1}, False),  # -1: no quota
    ({"CpuShares": 1024}, False),
    ({"CpuShares": 512}, True),
    ({"CpuQuota": 50000, "CpuPeriod": 100000}, True),
    ({"NanoCpus": 500_000_000}, True),
])
def test_cpu_limit_follows_the_benchmark(fields, limited):
    assert ("CV016" not in found(compliant(**fields), CIS)) is limited


def test_every_capability_by_name_is_all():
    every = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
             "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
             "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
             "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
             "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
             "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ"]
    assert "CV004" in found(compliant(CapAdd=[f"cap_{c.lower()}" for c in every]), DEFAULTS)
    assert "CV004" not in found(compliant(CapAdd=every[:-1]), DEFAULTS)
    # without --cap-drop=all, the default set plus the rest is every capability too
    not_dropped = compliant(CapDrop=None, CapAdd=[c for c in every if c not in ("CHOWN", "KILL", "MKNOD")])
    assert "CV004" in found(not_dropped, DEFAULTS)


# -- 8. the catalogue ----------------------------------------------------------------------------

def test_new_checks_continue_the_catalogue_and_are_listed():
    ids = [c.id for c in CATALOGUE]
    assert ids[-4:] == ["CV031", "CV032", "CV033", "CV301"] and "CV030" not in ids  # CV030: the plugin's
    table = catalogue()
    assert any(line.split()[:5] == ["CV031", "5.2", "medium", "selinux_disable_forbidden", "cis,strict"]
               for line in table.splitlines())
    assert any(line.split()[:5] == ["CV032", "5.18", "low", "ulimit_override_forbidden", "cis"]
               for line in table.splitlines())
    assert any(line.split()[:5] == ["CV033", "-", "high", "proc_unmasked_forbidden", "cis,strict"]
               for line in table.splitlines())


def test_policy_decide_takes_the_lookups():
    policy = parse_policy("profile: strict\n")
    container = with_mounts(volume("etcvol"))
    container["Config"]["User"] = "1000"
    container["HostConfig"].update(Memory=1 << 26, PidsLimit=10)
    assert policy.decide(container).allowed
    decision = policy.decide(container, Lookups(volumes={"etcvol": BIND_ETC}))
    assert [v.check for v in decision.violations] == ["CV007"]
    assert ALL_ON  # every boolean check on still judges the recorded containers without error
    for case in RECORDED.values():
        evaluate(case, ALL_ON)


def test_a_bind_through_a_symbolic_link_is_where_it_leads():
    container = {"Name": "/x", "HostConfig": {"Binds": ["/srv//innocent:/x", "/data:/d"]}}
    assert bind_sources(container) == ["/srv/innocent", "/data"]
    widened = widen(container, Lookups(real_paths={"/srv/innocent": "/etc"}))
    assert [(m["Source"], m.get("Link")) for m in widened["Mounts"]] == \
        [("/etc", "/srv/innocent"), ("/data", None)]
