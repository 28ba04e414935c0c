"""docker-covenant under a real systemd, installed as README.adoc says.

A Debian bookworm machine with systemd 252 as PID 1 and Debian's docker.io is booted with
systemd-nspawn (tests/systemd_machine.py). The README's service block is run in it line by
line, then the unit's life is exercised as an operator meets it: readiness, reload with a
good and a bad policy, the watchdog, Restart=, a start-up policy error in ``journalctl -u``,
and the authorization plugin's socket and service units with dockerd using them, across a
reboot of the machine. The tests run in file order on one machine (each leaves the
service as it found it: active, with the README's sample policy).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from systemd_machine import BUSYBOX_TAR, IMAGE, Machine, wait_inside

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
CHECKOUT = "/root/docker-covenant"
POLICY = "/etc/docker-covenant/docker-covenant.yml"
UNIT = "docker-covenant"
COMPLIANT = "--cap-drop=all --security-opt=no-new-privileges"  # the sample policy's defaults
WHEELS_ENV = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels"}  # the machine has no network


def readme_block(name: str) -> list[str]:
    """The shell lines of README.adoc's block between ``// NAME: begin`` and ``end``."""
    text = (REPO / "README.adoc").read_text(encoding="utf-8")
    block = text.split(f"// {name}: begin", 1)[1].split(f"// {name}: end", 1)[0]
    listing = block.split("----\n")[1]
    return [line for line in listing.replace("\\\n", " ").splitlines() if line.strip()]


def show(machine: Machine, unit: str, *props: str) -> dict[str, str]:
    out = machine.run(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(machine: Machine, *match: str) -> list[dict[str, str]]:
    out = machine.run("journalctl -o json --no-pager " + " ".join(shlex.quote(m) for m in match)).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def messages(machine: Machine, *match: str) -> list[str]:
    return [str(e.get("MESSAGE", "")) for e in journal(machine, *match)]


def wait_message(machine: Machine, text: str, *match: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in m for m in messages(machine, *match)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no journal line with {text!r} for {match}:\n"
                               + "\n".join(messages(machine, *match)[-20:]))
        time.sleep(0.5)


def docker(machine: Machine, args: str, check: bool = True) -> str:
    done = machine.run(f"docker {args}", check=check)
    return done.stdout.strip() if check else done.stdout.strip() + done.stderr.strip()


def running(machine: Machine, name: str) -> bool:
    return docker(machine, f"inspect -f '{{{{.State.Running}}}}' {name}") == "true"


def write_policy(machine: Machine, text: str) -> None:
    machine.run(f"cat > {POLICY} <<'EOF'\n{text}EOF")


def restore_sample_policy(machine: Machine) -> None:
    machine.run(f"install -m 0644 {CHECKOUT}/docker-covenant.yml {POLICY}")


def assert_violator_killed(machine: Machine, name: str) -> None:
    """A --privileged container is started, the daemon stops it and says so."""
    docker(machine, f"run -d --name {name} --privileged {IMAGE} sleep 300")
    wait_message(machine, f"{name}: stopping container", "SYSLOG_IDENTIFIER=docker-covenant")
    wait_inside(machine, f"test \"$(docker inspect -f '{{{{.State.Running}}}}' {name})\" = false",
                15, f"{name} to be stopped")


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    m = Machine(REPO)
    try:
        m.boot()
        wait_inside(m, "systemctl is-active docker", 120, "docker.service inside the machine")
        m.run(f"docker import {BUSYBOX_TAR} {IMAGE}")
        yield m
    finally:
        m.shutdown()


def test_installed_as_readme_says_active_only_after_ready(machine: Machine) -> None:
    lines = readme_block("service-install")
    assert lines[-1] == "journalctl -u docker-covenant -f"
    for line in lines[:-1]:
        machine.run(line, cwd=CHECKOUT, env=WHEELS_ENV)
    follow = machine.run("journalctl -u docker-covenant --no-pager", cwd=CHECKOUT).stdout
    assert "docker-covenant starting" in follow
    state = show(machine, UNIT, "ActiveState", "SubState", "Type", "StatusText", "UnitFileState",
                 "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    assert (state["ActiveState"], state["SubState"], state["Type"], state["UnitFileState"]) == \
        ("active", "running", "notify", "enabled")
    assert state["StatusText"].startswith("following Docker events; mode enforce")
    # the sandbox: the host's files, /run included, are read-only to the daemon
    main = show(machine, UNIT, "MainPID")["MainPID"]
    for path in ("/run/covenant-probe", "/etc/covenant-probe", "/var/lib/covenant-probe"):
        probe = machine.run(f"nsenter -t {main} -m touch {path}", check=False)
        assert probe.returncode != 0 and "Read-only file system" in probe.stderr, (path, probe.stderr)
    documentation = show(machine, UNIT, "Documentation")["Documentation"]
    assert documentation.startswith("file:") and "README.adoc" in documentation
    machine.run(f"grep -q '^= docker-covenant' {documentation.removeprefix('file:')}")
    # Type=notify: the unit became active only once the daemon said READY=1, which it does
    # after it logged that it follows the events stream, well after its process started.
    following = [e for e in journal(machine, "SYSLOG_IDENTIFIER=docker-covenant")
                 if e.get("MESSAGE", "").startswith("following Docker events")]
    assert following
    logged = int(following[0]["__MONOTONIC_TIMESTAMP"])
    started, active = (int(state[k]) for k in ("ExecMainStartTimestampMonotonic",
                                               "ActiveEnterTimestampMonotonic"))
    assert started < logged <= active


def test_stops_a_violator_and_leaves_a_compliant_container(machine: Machine) -> None:
    docker(machine, f"run -d --name plain {COMPLIANT} {IMAGE} sleep 300")
    assert_violator_killed(machine, "evil")
    assert running(machine, "plain")
    docker(machine, "rm -f plain evil")


def test_reload_with_a_good_then_a_bad_policy(machine: Machine) -> None:
    pid = show(machine, UNIT, "MainPID")["MainPID"]
    sample = (REPO / "docker-covenant.yml").read_text()
    write_policy(machine, sample.replace("\n...", "") + "trusted:\n  privileged: yes\n"
                 "  cap_drop_required: no\n  security_opt_required: no\n")
    machine.run(f"systemctl reload {UNIT}")
    wait_message(machine, "policy reloaded", "SYSLOG_IDENTIFIER=docker-covenant")
    docker(machine, f"run -d --name trusted --privileged {IMAGE} sleep 300")
    wait_message(machine, "trusted: allowed", "SYSLOG_IDENTIFIER=docker-covenant")
    assert running(machine, "trusted")

    write_policy(machine, "trusted:\n  privileged: [unclosed\n")
    machine.run(f"systemctl reload {UNIT}")
    wait_message(machine, "policy reload failed", "SYSLOG_IDENTIFIER=docker-covenant")
    state = show(machine, UNIT, "ActiveState", "MainPID")
    assert (state["ActiveState"], state["MainPID"]) == ("active", pid)
    # the previous (good) policy still holds: the trusted name may, any other may not
    assert_violator_killed(machine, "evil-after-bad-reload")
    assert running(machine, "trusted")
    docker(machine, "rm -f trusted evil-after-bad-reload")
    restore_sample_policy(machine)
    machine.run(f"systemctl reload {UNIT}")


def test_watchdog_restarts_a_stopped_daemon(machine: Machine) -> None:
    before = show(machine, UNIT, "MainPID", "NRestarts", "WatchdogUSec")
    assert before["WatchdogUSec"] == "30s"
    machine.run(f"kill -STOP {before['MainPID']}")
    wait_inside(machine, f"test \"$(systemctl show -p MainPID --value {UNIT})\" != {before['MainPID']} "
                f"&& systemctl is-active {UNIT}", 75, "the watchdog to restart the daemon")
    assert any("Watchdog timeout" in m for m in messages(machine, "-u", UNIT))
    assert int(show(machine, UNIT, "NRestarts")["NRestarts"]) == int(before["NRestarts"]) + 1
    assert_violator_killed(machine, "evil-after-watchdog")
    docker(machine, "rm -f evil-after-watchdog")


def test_restarted_after_sigkill(machine: Machine) -> None:
    before = show(machine, UNIT, "MainPID", "NRestarts")
    machine.run(f"kill -KILL {before['MainPID']}")
    wait_inside(machine, f"test \"$(systemctl show -p MainPID --value {UNIT})\" != {before['MainPID']} "
                f"&& systemctl is-active {UNIT}", 30, "Restart= to start the daemon again")
    assert int(show(machine, UNIT, "NRestarts")["NRestarts"]) == int(before["NRestarts"]) + 1
    assert_violator_killed(machine, "evil-after-sigkill")
    docker(machine, "rm -f evil-after-sigkill")


def test_start_up_policy_error_is_in_journalctl_u(machine: Machine) -> None:
    write_policy(machine, "---\nsyslog_ident: docker-covenant\nweb:\n  privileged: perhaps\n")
    done = machine.run(f"systemctl restart {UNIT}", check=False)
    assert done.returncode != 0
    state = show(machine, UNIT, "ActiveState", "ExecMainStatus", "NRestarts")
    assert (state["ActiveState"], state["ExecMainStatus"]) == ("failed", "2")
    error = [m for m in messages(machine, "-u", UNIT) if m.startswith("docker-covenant: error:")]
    assert error and f"{POLICY}:4: web.privileged" in error[-1], messages(machine, "-u", UNIT)[-10:]
    time.sleep(3)  # RestartSec=2s: exit status 2 must not be restarted
    assert show(machine, UNIT, "ActiveState", "NRestarts") == {"ActiveState": "failed",
                                                               "NRestarts": state["NRestarts"]}
    restore_sample_policy(machine)
    machine.run(f"systemctl restart {UNIT}")
    assert show(machine, UNIT, "ActiveState")["ActiveState"] == "active"


def cap_eff(machine: Machine, name: str) -> str:
    pid = docker(machine, f"inspect -f '{{{{.State.Pid}}}}' {name}")
    status = machine.run(f"cat /proc/{pid}/status").stdout
    return next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))


def assert_refused(machine: Machine, name: str) -> None:
    """A --privileged docker run is refused by the plugin, and no such container ever ran."""
    out = docker(machine, f"run -d --name {name} --privileged {IMAGE} sleep 300", check=False)
    assert "authorization denied by plugin docker-covenant" in out, out
    found = machine.run(f"docker inspect -f '{{{{.State.StartedAt}}}}' {name}", check=False)
    assert found.returncode != 0 or found.stdout.strip().startswith("0001-01-01"), found.stdout


def test_authorization_plugin_units_across_a_reboot(machine: Machine) -> None:
    # Control: this machine's dockerd, without the plugin, runs the violator (the events
    # daemon is stopped so that it does not stop it).
    machine.run(f"systemctl stop {UNIT}")
    docker(machine, f"run -d --name control --privileged {IMAGE} sleep 300")
    assert running(machine, "control") and cap_eff(machine, "control") != "0000000000000000"
    assert int(cap_eff(machine, "control"), 16) & (1 << 21)  # CAP_SYS_ADMIN
    docker(machine, "rm -f control")
    machine.run(f"systemctl start {UNIT}")

    for line in readme_block("authz-install"):
        if line.startswith("# /etc/docker/daemon.json:"):
            config = json.loads(machine.run("cat /etc/docker/daemon.json").stdout)
            config.update(json.loads(line.split(":", 1)[1]))
            machine.run(f"cat > /etc/docker/daemon.json <<'EOF'\n{json.dumps(config)}\nEOF")
        else:
            machine.run(line, cwd=CHECKOUT)
    assert show(machine, "docker-covenant-authz.socket", "ActiveState")["ActiveState"] == "active"
    assert_refused(machine, "refused")
    docker(machine, f"run -d --name allowed {COMPLIANT} {IMAGE} sleep 300")
    assert running(machine, "allowed")
    wait_message(machine, "refused: denied POST", "-u", "docker-covenant-authz")

    machine.reboot()
    assert machine.boots == 2
    wait_inside(machine, "systemctl is-active docker", 120, "docker.service after the reboot")
    for unit in ("docker-covenant-authz.socket", "docker", UNIT):
        assert show(machine, unit, "ActiveState")["ActiveState"] == "active", unit
    assert_refused(machine, "refused-after-reboot")
    docker(machine, "rm -f allowed")
    docker(machine, f"run -d --name allowed-after-reboot {COMPLIANT} {IMAGE} sleep 300")
    assert running(machine, "allowed-after-reboot")
    assert show(machine, "docker-covenant-authz.service", "ActiveState")["ActiveState"] == "active"
