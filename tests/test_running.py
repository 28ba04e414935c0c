"""The three ways README.adoc runs it: from a shell, as a container, as a systemd service."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from harness import (
    COMPLIANT,
    IMAGE,
    REPO,
    Covenant,
    host_python_mounts,
    is_running,
    run_container,
    unique,
    wait_until,
)

from covenant.policy import Policy


def test_from_a_shell_the_console_command_runs_the_sample_policy(dockerd, client, journal, tmp_path):
    """`pip install .` then `docker-covenant` in the checkout: ./docker-covenant.yml, debug on."""
    command = shutil.which("docker-covenant")
    assert command, "docker-covenant is not on PATH: install the package first (README, Quick start)"
    cov = Covenant(tmp_path, dockerd.host, None, ident="docker-covenant", argv=[command], cwd=REPO)
    try:
        cov.start()
        name = unique("shell")
        run_container(client, name)
        journal.wait_for("docker-covenant", f"{name}: stopping container")
        privoxy = run_container(client, "privoxy", cap_drop=["ALL"])  # the sample's exception
        journal.wait_for("docker-covenant", "privoxy: allowed")
        assert is_running(privoxy)
        wait_until(lambda: f"{name}: stopping container" in cov.output(), 5, what="console copy")
        assert "policy docker-covenant.yml" in cov.output()
        assert cov.stop() == 0
    finally:
        cov.close()


def test_as_a_container_with_the_readme_flags(dockerd, client, journal, tmp_path):
    """The README's `docker run` flags with the host's Python in the busybox image (the image
    itself, run with the README's exact line, is test_image.py): --cap-drop=all,
    no-new-privileges, read-only, no network, memory and PIDs limits, the Docker socket, the
    journal socket and the policy directory mounted read-only."""
    ident = unique("covctr")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "docker-covenant.yml").write_text(f"syslog_ident: {ident}\ndebug: no\n")
    volumes = {**host_python_mounts(),
               str(dockerd.socket): {"bind": "/var/run/docker.sock", "mode": "ro"},
               "/run/systemd/journal/socket": {"bind": "/run/systemd/journal/socket", "mode": "ro"},
               str(etc): {"bind": "/etc/docker-covenant", "mode": "ro"}}
    me = client.containers.run(
        IMAGE, [sys.executable, "-m", "covenant"], name="docker-covenant", detach=True,
        cap_drop=["all"], security_opt=["no-new-privileges"], read_only=True, network_mode="none",
        mem_limit="256m", pids_limit=64, volumes=volumes, working_dir="/",
        environment={"PYTHONPATH": str(REPO)})
    journal.wait_for(ident, "following Docker events", timeout=30)
    assert "policy /etc/docker-covenant/docker-covenant.yml" in journal.messages(ident)[0]
    bad = run_container(client, unique("bad"))
    journal.wait_for(ident, f"{bad.name}: stopping container")
    good = run_container(client, unique("good"), **COMPLIANT)
    journal.wait_for(ident, f"{good.name}: allowed")
    assert is_running(me), me.logs().decode()
    me.reload()
    assert Policy().decide(me.attrs).allowed  # it passes its own default policy


def _unit_for_this_install(tmp_path, name="docker-covenant.service"):
    """A shipped unit, with ExecStart pointing where this test run installed the command
    (verify checks that the binary exists)."""
    command = shutil.which("docker-covenant")
    assert command, "docker-covenant is not on PATH"
    text = (REPO / "contrib" / name).read_text()
    unit = tmp_path / name
    unit.write_text(text.replace("/opt/docker-covenant/bin/docker-covenant", command))
    return unit


def test_systemd_unit_verifies(tmp_path):
    unit = _unit_for_this_install(tmp_path)
    text = unit.read_text()
    for line in ("Type=notify", "Requires=docker.service", "After=docker.service", "Restart=on-failure"):
        assert line in text
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "docker-covenant.service" not in result.stderr, result.stderr


def test_the_units_send_start_up_errors_to_the_journal(tmp_path, journal):
    """Both units send stderr to the journal (stdout, which the daemon never writes, is
    discarded): a policy that cannot be used -- exit status 2, not restarted -- is said
    in the journal, not only as `status=2/INVALIDARGUMENT`. Run here as systemd runs it:
    stderr a stream into journald, JOURNAL_STREAM naming it."""
    for name in ("docker-covenant.service", "docker-covenant-authz.service"):
        lines = (REPO / "contrib" / name).read_text().splitlines()
        assert "StandardError=journal" in lines and "StandardOutput=null" in lines, name
    bad = tmp_path / "bad.yml"
    bad.write_text("web:\n  cap_drop_requird: yes\n")
    for command in ([], ["authz"]):
        ident = unique("covtest-unit")
        stream, env = journal.stream(ident)
        with stream:
            result = subprocess.run([sys.executable, "-m", "covenant", "--config", str(bad), *command],
                                    stdout=subprocess.DEVNULL, stderr=stream.fileno(), timeout=60,
                                    env={**os.environ, "PYTHONPATH": str(REPO), **env}, check=False)
        assert result.returncode == 2
        said = f"docker-covenant: error: {bad}:2: web: unknown key 'cap_drop_requird'"
        entry = journal.wait_for(ident, said)
        assert entry["_TRANSPORT"] == "stdout"


def test_systemd_units_are_sandboxed(tmp_path):
    for name in ("docker-covenant.service", "docker-covenant-authz.service"):
        unit = _unit_for_this_install(tmp_path, name)
        result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                                capture_output=True, text=True, check=False)
        line = next(x for x in result.stdout.splitlines() if "Overall exposure level" in x)
        # 2.1, not lower: the host's /tmp, /dev and /home stay visible (read-only), where a
        # bind mount's source may be a symbolic link the daemon must follow
        assert float(line.split(":")[1].split()[0]) <= 2.1, line


def test_authz_units_verify_and_start_before_docker(tmp_path):
    service = _unit_for_this_install(tmp_path, "docker-covenant-authz.service")
    socket_unit = _unit_for_this_install(tmp_path, "docker-covenant-authz.socket")
    for unit in (service, socket_unit):
        assert "Before=docker.service" in unit.read_text()
        # a crash-looping plugin must never be left failed: dockerd would refuse everything
        assert "StartLimitIntervalSec=0" in unit.read_text()
    assert "Restart=always" in service.read_text() and "RestartPrevent" not in service.read_text()
    assert "TriggerLimitIntervalSec=0" in socket_unit.read_text()
    assert "ListenStream=/run/docker/plugins/docker-covenant.sock" in socket_unit.read_text()
    result = subprocess.run(["systemd-analyze", "verify", str(socket_unit), str(service)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "docker-covenant" not in result.stderr, result.stderr
