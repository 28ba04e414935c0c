"""`docker-covenant audit` judging the daemon and the images in use (CV1nn), end to end on
private dockerds started hardened, loose and as the suite starts them (``hostbed.py``):
each daemon item flips with the daemon's own setting, each image item with the image."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import COMPLIANT, IMAGE, REPO, PrivateDockerd, busybox_image, run_container, unique
from hostbed import IMAGES, PLAIN_PORT, TLS_PORT, build_image, hardened, loose, tls_without_verify

BUILT = "covtest/user-and-healthcheck:1"


def audit(tmp_path, host, policy, *args):
    config = tmp_path / "audit.yml"
    config.write_text("debug: no\n" + policy)
    env = {**os.environ, "DOCKER_HOST": host, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "covenant", "audit", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def entries(result, kind):
    return [e for e in json.loads(result.stdout) if e["kind"] == kind]


def daemon_ids(result):
    [entry] = entries(result, "daemon")
    return [v["check"] for v in entry["violations"]], entry


def test_audit_judges_the_daemon_and_the_images_in_use(tmp_path, dockerd, client):
    build_image(client, BUILT, IMAGES["user-and-healthcheck"])
    plain = run_container(client, unique("plain"), **COMPLIANT)
    built = client.containers.run(BUILT, ["sleep", "3600"], name=unique("built"), detach=True,
                                  network_mode="none", **COMPLIANT)
    result = audit(tmp_path, dockerd.host, "profile: cis\n", "--format", "json")
    assert result.returncode == 1, result.stderr
    # the suite's dockerd: unix socket only and --bridge=none (no default bridge for icc)
    found, entry = daemon_ids(result)
    assert found == ["CV101", "CV102", "CV104"]
    assert entry["violations"][0] == {"check": "CV101", "cis": "2.8", "severity": "medium",
                                      "title": "User namespace remapping enabled (--userns-remap)",
                                      "message": f"{entry['name']}: user namespace remapping off"}
    images = {e["name"]: e for e in entries(result, "image")}
    assert set(images) == {IMAGE, BUILT}
    assert [v["check"] for v in images[IMAGE]["violations"]] == ["CV111", "CV112"]
    assert images[IMAGE]["containers"] == [plain.name]
    assert images[BUILT]["violations"] == [] and images[BUILT]["containers"] == [built.name]

    shown = audit(tmp_path, dockerd.host, "profile: cis\n")
    lines = shown.stdout.splitlines()
    assert any(line.split()[:5] == ["image", IMAGE, "CV111", "4.1", "medium"] for line in lines)
    assert any(line.split()[:5] == ["daemon", entry["name"], "CV102", "2.13", "low"] for line in lines)
    assert lines[-2:] == [f"daemon {entry['name']}: 3 findings", "2 images, 1 violating"]


def test_host_findings_alone_set_the_exit_status_and_original_adds_nothing(tmp_path, dockerd, client):
    build_image(client, BUILT, IMAGES["user-and-healthcheck"])
    client.containers.run(BUILT, ["sleep", "3600"], name=unique("built"), detach=True, network_mode="none",
                          **COMPLIANT)
    original = audit(tmp_path, dockerd.host, "", "--format", "json")
    assert original.returncode == 0, original.stderr
    assert [e["kind"] for e in json.loads(original.stdout)] == ["container"]
    assert audit(tmp_path, dockerd.host, "").stdout == "1 containers, all compliant\n"

    live = audit(tmp_path, dockerd.host, "host_audit:\n  live_restore_required: yes\n", "--format", "json")
    assert live.returncode == 1 and daemon_ids(live)[0] == ["CV102"] and entries(live, "image") == []
    images = audit(tmp_path, dockerd.host, "host_audit:\n  image_user_required: yes\n"
                   "  image_healthcheck_required: yes\n", "--format", "json")
    assert images.returncode == 0 and entries(images, "daemon") == []
    assert [e["violations"] for e in entries(images, "image")] == [[]]

    run_container(client, unique("plain"), **COMPLIANT)  # the busybox image: no USER
    assert audit(tmp_path, dockerd.host, "host_audit:\n  image_user_required: yes\n").returncode == 1


def _judged(tmp_path, daemon: PrivateDockerd):
    daemon.start(timeout=90)
    client = daemon.client()
    try:
        busybox_image(client)
        client.containers.run(IMAGE, ["sleep", "3600"], name=unique("c"), detach=True, network_mode="none",
                              **COMPLIANT)
        result = audit(tmp_path, daemon.host, "profile: cis\n", "--format", "json")
        assert result.returncode == 1, result.stderr  # the busybox image: CV111, CV112
        found, entry = daemon_ids(result)
        entry["containers"] = [client.api.inspect_container(c["id"]) | {"audited": c}
                               for c in entries(result, "container")]
        return found, entry
    finally:
        client.close()


def test_a_hardened_daemon_meets_every_daemon_check(tmp_path, engine):
    """--userns-remap, --live-restore, --icc=false, an authorization plugin, --tlsverify."""
    daemon, plugin = hardened(tmp_path / "hardened", engine)
    try:
        found, _ = _judged(tmp_path, daemon)
    finally:
        daemon.stop()
        plugin.close()
    assert found == []


def test_a_loose_daemon_fails_every_daemon_check(tmp_path, engine):
    """A default bridge with icc on and a TCP socket without TLS, nothing else set (but
    --default-ulimit, which /info does not show)."""
    daemon = loose(engine, "--default-ulimit", "nofile=1024:2048")
    try:
        found, entry = _judged(tmp_path, daemon)
    finally:
        daemon.stop()
    assert found == ["CV101", "CV102", "CV103", "CV104", "CV105"]
    # as README.adoc says: dockerd copies its default ulimits into the container's own
    # HostConfig, where CV032 cannot tell them from a --ulimit
    [container] = entry["containers"]
    assert container["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert "CV032" in [v["check"] for v in container["audited"]["violations"]]
    assert entry["violations"][4]["message"] == (
        f"{entry['name']}: API on TCP without TLS verification: 127.0.0.1:{PLAIN_PORT} (no TLS)")


def test_tls_without_client_verification_fails_cv105(tmp_path, engine):
    daemon = tls_without_verify(tmp_path / "tls", engine)
    try:
        _, entry = _judged(tmp_path, daemon)
    finally:
        daemon.stop()
    assert [v["message"] for v in entry["violations"] if v["check"] == "CV105"] == [
        f"{entry['name']}: API on TCP without TLS verification: 127.0.0.1:{TLS_PORT} "
        "(TLS without client verification)"]


def test_tls_with_a_ca_and_no_tlsverify_flag_is_what_dockerd_says(tmp_path, engine):
    """--tls with --tlscacert but no --tlsverify: dockerd reports no warning, so CV105 finds
    nothing (README.adoc: dockerd's own account is what counts)."""
    daemon = tls_without_verify(tmp_path / "tls-ca", engine, verify_flag=False)
    try:
        found, _ = _judged(tmp_path, daemon)
    finally:
        daemon.stop()
    assert "CV105" not in found and "CV101" in found
