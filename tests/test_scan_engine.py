"""The image gate end to end, on both engines: a scanner stand-in the test writes (it
answers with a real Trivy report for the images the test marks, a clean one otherwise)
run by the events daemon, the authorization plugin and ``audit``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from harness import COMPLIANT, busybox_tar, is_running, run_container, unique, wait_until
from test_authz import docker, exists

SCANS = Path(__file__).parent / "data" / "scans"
CLEAN = '{"SchemaVersion": 2, "ArtifactName": "clean", "Results": []}'


def image(client, tag: str) -> str:
    """A busybox image of its own id (its label differs): the id the scanner is given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        busybox_tar(tar)
    repo, _, version = tag.partition(":")
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=version,
                                      changes=[f"LABEL covenant.test.image={tag}"])
    return client.images.get(tag).id


class StandIn:
    """The scanner: logs each call; a Trivy report with two CRITICAL findings for the image
    ids listed in ``rejected``, a clean one for any other; waits ``delay`` seconds first."""

    def __init__(self, tmp_path: Path, delay: float = 0) -> None:
        self.dir = tmp_path
        self.rejected = tmp_path / "rejected"
        self.rejected.write_text("")
        self.calls = tmp_path / "calls"
        self.path = tmp_path / "scanner"
        self.path.write_text(
            f"#!/bin/sh\necho \"$1\" >> {self.calls}\nsleep {delay}\n"
            f"if grep -qx \"$1\" {self.rejected}; then cat {SCANS / 'trivy-alpine-39-high-critical.json'}; "
            f"else echo '{CLEAN}'; fi\n")
        self.path.chmod(0o755)

    def reject(self, image_id: str) -> None:
        with self.rejected.open("a") as f:
            f.write(image_id + "\n")

    def scanned(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def policy(self, unscanned: str = "wait") -> str:
        return (f"image_scan:\n  command: ['{self.path}', '{{image}}']\n  format: trivy\n  severity: high\n"
                f"  unscanned: {unscanned}\nscanned-*:\n  image_scan_required: yes\n")


def test_daemon_stops_a_container_whose_image_the_scanner_rejects(tmp_path, dockerd, client,
                                                                  covenant_factory, journal):
    scanner = StandIn(tmp_path)
    bad, good = image(client, "covenant-test/scan-bad:1"), image(client, "covenant-test/scan-good:1")
    assert bad != good
    scanner.reject(bad)
    cov = covenant_factory("debug: yes\n" + scanner.policy("wait"))
    victim = run_container(client, unique("scanned"), image="covenant-test/scan-bad:1", **COMPLIANT)
    twin = run_container(client, unique("scanned"), image="covenant-test/scan-bad:1", **COMPLIANT)
    fine = run_container(client, unique("scanned"), image="covenant-test/scan-good:1", **COMPLIANT)
    unrequired = run_container(client, unique("free"), image="covenant-test/scan-bad:1", **COMPLIANT)
    for c in (victim, twin):
        entry = journal.wait_for(cov.ident, f"{c.name}: image not accepted by the vulnerability scan",
                                 timeout=30)
        assert entry["COVENANT_CHECK"] == "CV301"
        assert "2 finding(s) at or above HIGH: CVE-2019-14697 (musl, CRITICAL)" in entry["MESSAGE"]
        wait_until(lambda c=c: not is_running(c), 10, what=f"{c.name} to be stopped")
    journal.wait_for(cov.ident, f"{fine.name}: allowed", timeout=30)
    journal.wait_for(cov.ident, f"{unrequired.name}: allowed", timeout=30)
    assert is_running(fine) and is_running(unrequired)
    assert sorted(scanner.scanned()) == sorted([bad, good])  # once per image, not per container


@pytest.mark.parametrize("unscanned", ["allow", "deny"])
def test_a_container_whose_image_has_no_verdict_yet(tmp_path, dockerd, client, covenant_factory, journal,
                                                    unscanned):
    scanner = StandIn(tmp_path, delay=2)
    bad = image(client, f"covenant-test/scan-slow-{unscanned}:1")
    scanner.reject(bad)
    cov = covenant_factory("debug: yes\n" + scanner.policy(unscanned))
    c = run_container(client, unique("scanned"), image=f"covenant-test/scan-slow-{unscanned}:1", **COMPLIANT)
    if unscanned == "deny":
        entry = journal.wait_for(cov.ident, f"{c.name}: image not accepted by the vulnerability scan: "
                                 "not scanned yet", timeout=30)
        assert entry["COVENANT_CHECK"] == "CV301"
    else:  # allowed and logged while the scan runs, stopped once the verdict rejects it
        journal.wait_for(cov.ident, f"{c.name}: allowed", timeout=30)
        journal.wait_for(cov.ident, f"{c.name}: image not accepted by the vulnerability scan: 2 finding(s)",
                         timeout=30)
    wait_until(lambda: not is_running(c), 10, what=f"{c.name} to be stopped")


def test_plugin_refuses_a_rejected_image_and_its_control_runs_it(tmp_path, bed, plugin_policy, dockerd,
                                                                 client):
    guarded_d, _, _ = bed
    guarded = guarded_d.client()
    scanner = StandIn(tmp_path)
    bad = image(guarded, "covenant-test/scan-bad:2")
    good = image(guarded, "covenant-test/scan-good:2")
    scanner.reject(bad)
    plugin_policy(scanner.policy("wait"))
    name = unique("scanned")
    flags = ["--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges"]
    refused = docker(bed, "run", "-d", *flags, "--name", name, "covenant-test/scan-bad:2", "sleep", "60")
    assert refused.returncode != 0
    assert f"[CV301] {name}: image not accepted by the vulnerability scan: 2 finding(s)" in refused.stderr
    assert not exists(bed, name) or not json.loads(docker(bed, "inspect", name).stdout)[0]["State"]["Running"]
    welcome = docker(bed, "run", "-d", *flags, "--name", unique("scanned"), "covenant-test/scan-good:2",
                     "sleep", "60")
    assert welcome.returncode == 0, welcome.stderr
    assert set(scanner.scanned()) == {bad, good}
    # control: the same run on an engine without the plugin starts the container
    image(client, "covenant-test/scan-bad:2")
    control = subprocess.run(["docker", "-H", dockerd.host, "run", "-d", *flags, "--name", name,
                              "covenant-test/scan-bad:2", "sleep", "60"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert control.returncode == 0, control.stderr
    assert is_running(client.containers.get(name))
    guarded.close()


def test_audit_reports_a_rejected_image(tmp_path, dockerd, client):
    scanner = StandIn(tmp_path)
    bad = image(client, "covenant-test/scan-bad:3")
    scanner.reject(bad)
    c = run_container(client, unique("scanned"), image="covenant-test/scan-bad:3", **COMPLIANT)
    config = tmp_path / "policy.yml"
    config.write_text("debug: no\n" + scanner.policy("wait"))
    done = subprocess.run([sys.executable, "-m", "covenant", "audit", "--config", str(config), "--format",
                           "json"], capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": dockerd.host,
                               "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.returncode == 1, done.stderr
    [row] = [r for r in json.loads(done.stdout) if r["name"] == c.name]
    assert [v["check"] for v in row["violations"]] == ["CV301"]
    assert is_running(c)
