"""The shadow policy end to end: judged beside the enforced one, logged and counted, never
acted on -- with its control, the same rules enforced, which do stop the container."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from harness import COMPLIANT, IMAGE, is_running, run_container, unique, wait_until
from test_operate import free_port, samples

from covenant.policy import PolicyError, parse_policy

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
SHADOW = "debug: no\n'*':\n  memory_limit_required: yes\n"  # CV015 for every container without --memory


def shadow_count(url: str, verdict: str, enforced: str) -> float:
    key = ("covenant_shadow_decisions_total", (("enforced", enforced), ("verdict", verdict)))
    return samples(url).get(key, 0.0)


def test_the_shadow_flags_a_container_and_never_stops_it(tmp_path, client, covenant_factory, journal):
    (tmp_path / "next.yml").write_text(SHADOW)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cov = covenant_factory(f"debug: no\nmetrics_address: ':{port}'\nshadow: next.yml\n")
    loaded = journal.wait_for(cov.ident, "shadow policy", COVENANT_ACTION="shadow-loaded")
    assert loaded["COVENANT_SHADOW_POLICY"] == str(tmp_path / "next.yml")
    assert samples(url)[("covenant_shadow_loaded", ())] == 1.0

    name = unique("shadowed")
    container = run_container(client, name, **COMPLIANT)
    entry = journal.wait_for(cov.ident, f"{name}: shadow policy would stop it", COVENANT_ACTION="shadow")
    assert entry["MESSAGE"] == (f"{name}: shadow policy would stop it (CV015): {name}: no memory limit; "
                                "the enforced policy allows it")
    assert (entry["COVENANT_CHECK"], entry["COVENANT_SHADOW_VERDICT"], entry["COVENANT_ENFORCED_VERDICT"],
            entry["COVENANT_SHADOW_NEW"]) == ("CV015", "violates", "allowed", "CV015")
    assert entry["CONTAINER_ID"] == container.id and entry["CONTAINER_NAME"] == name
    assert entry["PRIORITY"] == "6"
    # the enforced decision was made (and acted on) before the shadow's line was written
    assert journal.entries(cov.ident, CONTAINER_NAME=name, COVENANT_ACTION="allowed")
    time.sleep(0.5)
    assert is_running(container)
    assert client.api.inspect_container(container.id)["State"]["Running"] is True
    assert not journal.entries(cov.ident, CONTAINER_NAME=name, COVENANT_ACTION="killed")
    metrics = samples(url)
    assert shadow_count(url, "violates", "allowed") == 1.0
    assert metrics[("covenant_shadow_violations_total", (("check", "CV015"),))] == 1.0
    assert ("covenant_violations_total", (("check", "CV015"),)) not in metrics  # the enforced count

    # a shadow verdict that agrees: a violator both flag is stopped by the enforced policy alone
    bad = run_container(client, unique("both"))
    both = journal.wait_for(cov.ident, f"{bad.name}: shadow policy would stop it", COVENANT_ACTION="shadow")
    assert (both["COVENANT_CHECK"], both["COVENANT_SHADOW_NEW"]) == ("CV002,CV003,CV015", "CV015")
    assert both["COVENANT_ENFORCED_VERDICT"] == "violates"
    wait_until(lambda: not is_running(bad), 5, what="the enforced policy's violator to die")
    assert shadow_count(url, "violates", "violates") == 1.0
    assert cov.stop() == 0

    # the control: the shadow's rules enforced stop the very container the shadow left running
    control = covenant_factory(SHADOW)
    journal.wait_for(control.ident, f"{name}: stopping container")
    wait_until(lambda: not is_running(container), 5, what=f"{name} to be stopped by the enforced rules")


def test_a_broken_shadow_file_never_stops_enforcement(tmp_path, client, covenant_factory, journal):
    shadow = tmp_path / "next.yml"
    shadow.write_text("web:\n  privileged: maybe\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cov = covenant_factory(f"debug: no\nmetrics_address: ':{port}'\nshadow: next.yml\n")
    failed = journal.wait_for(cov.ident, "shadow policy not loaded", COVENANT_ACTION="shadow-failed")
    assert failed["MESSAGE"] == (f"shadow policy not loaded: {shadow}:2: web.privileged: expected yes or no, "
                                 "got 'maybe'; no shadow policy (enforcement goes on)")
    assert failed["PRIORITY"] == "3"
    assert samples(url)[("covenant_shadow_loaded", ())] == 0.0
    bad = run_container(client, unique("still-killed"))
    journal.wait_for(cov.ident, f"{bad.name}: stopping container")
    wait_until(lambda: not is_running(bad), 5)
    assert not journal.entries(cov.ident, COVENANT_ACTION="shadow")

    # fixed, it is read with the policy on SIGHUP; broken again, the previous shadow stays
    shadow.write_text(SHADOW)
    cov.signal(signal.SIGHUP)
    journal.wait_for(cov.ident, "shadow policy", COVENANT_ACTION="shadow-loaded")
    shadow.write_text("- not a mapping\n")
    cov.signal(signal.SIGHUP)
    kept = journal.wait_for(cov.ident, "keeping the previous shadow policy", COVENANT_ACTION="shadow-failed")
    assert f"{shadow}:1: the policy must be a mapping" in kept["MESSAGE"]
    good = run_container(client, unique("kept"), **COMPLIANT)
    journal.wait_for(cov.ident, f"{good.name}: shadow policy would stop it", COVENANT_ACTION="shadow")
    assert samples(url)[("covenant_shadow_loaded", ())] == 1.0
    assert is_running(good) and cov.alive()


def test_the_plugin_gives_a_shadow_verdict_on_creates(bed, plugin_policy, journal):
    """The authorization plugin judges each create under the shadow policy too, after it
    answered: the create the shadow would refuse is made and runs; enforced, it is refused."""
    daemon, plugin, _ = bed
    (plugin.config.parent / "plugin-next.yml").write_text(SHADOW)
    plugin_policy("debug: no\nshadow: plugin-next.yml\n")
    before = shadow_count(plugin.metrics_url, "violates", "allowed")
    name = unique("shadow-create")
    made = subprocess.run([DOCKER, "-H", daemon.host, "run", "-d", "--name", name, "--network", "none",
                           "--cap-drop", "all", "--security-opt", "no-new-privileges", IMAGE, "sleep", "300"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    entry = journal.wait_for(plugin.ident, f"{name}: shadow policy would deny its create",
                             COVENANT_ACTION="shadow")
    assert (entry["COVENANT_CHECK"], entry["COVENANT_ENFORCED_VERDICT"]) == ("CV015", "allowed")
    client = daemon.client()
    try:
        assert client.api.inspect_container(name)["State"]["Running"] is True
        client.api.remove_container(name, force=True)
    finally:
        client.close()
    assert shadow_count(plugin.metrics_url, "violates", "allowed") == before + 1

    # the control: the same rules enforced refuse the same create
    plugin_policy(SHADOW)
    refused = subprocess.run([DOCKER, "-H", daemon.host, "create", "--name", name, "--network", "none",
                              "--cap-drop", "all", "--security-opt", "no-new-privileges", IMAGE],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0 and f"[CV015] {name}: no memory limit" in refused.stderr


def test_the_shadow_flag_names_the_shadow_policy(tmp_path, client, covenant_factory, journal):
    """``--shadow PATH`` (relative to the working directory) in place of the policy's key."""
    (tmp_path / "flagged.yml").write_text(SHADOW)
    ident = unique("covtest-flag")
    argv = [sys.executable, "-m", "covenant", "--config", str(tmp_path / f"{ident}.yml"),
            "--shadow", "flagged.yml"]
    cov = covenant_factory("debug: no\n", ident=ident, argv=argv)
    journal.wait_for(cov.ident, "shadow policy flagged.yml", COVENANT_ACTION="shadow-loaded")
    container = run_container(client, unique("flag"), **COMPLIANT)
    entry = journal.wait_for(cov.ident, f"{container.name}: shadow policy would stop it",
                             COVENANT_ACTION="shadow")
    assert entry["COVENANT_SHADOW_POLICY"] == "flagged.yml"
    assert is_running(container)


def test_the_shadow_key_is_validated_with_its_line():
    assert parse_policy("debug: no\nshadow: next.yml\n").shadow == "next.yml"
    with pytest.raises(PolicyError) as e:
        parse_policy("debug: no\nshadow: [a, b]\n", "p.yml")
    assert str(e.value) == ("p.yml:2: shadow: expected a policy file (relative to this one) to judge beside "
                            "it, got ['a', 'b']")
