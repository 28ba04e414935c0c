"""Reading and validating the policy file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from covenant.policy import PolicyError, find_config, load_policy, parse_policy

REPO = Path(__file__).resolve().parent.parent


def test_sample_file_reads_unchanged():
    policy = load_policy(REPO / "docker-covenant.yml")
    assert (policy.syslog_ident, policy.debug, policy.mode, policy.action) == (
        "docker-covenant", True, "enforce", "kill")
    original = ("privileged", "cap_drop_required", "security_opt_required")

    def original_settings(name):
        return tuple(policy.settings_for(name)[k] for k in original)

    assert original_settings("privoxy") == (False, True, False)
    assert original_settings("docker-bench-security") == (True, False, True)
    assert original_settings("anything-else") == (False, True, True)
    # every check beyond the original three is off unless the policy turns it on
    assert not [k for k, v in policy.settings_for("anything-else").items()
                if k not in original and k != "usage_for" and v]  # usage_for: how long, not a check


def test_defaults_when_file_is_empty_and_null_sections():
    policy = parse_policy("---\n...\n")
    assert (policy.syslog_ident, policy.debug, policy.mode) == ("docker-covenant", True, "enforce")
    assert parse_policy("web:\n").settings_for("web")["cap_drop_required"] is True


@pytest.mark.parametrize(("text", "line", "words"), [
    ("debug: yes\nweb:\n  privileged: [no\n", 4, "YAML syntax error"),
    ("debug: yes\nweb:\n  privilegd: no\n", 3, "web: unknown key 'privilegd'"),
    ("web:\n  privileged: maybe\n", 2, "web.privileged: expected yes or no, got 'maybe'"),
    ("debug: 1\n", 1, "debug: expected yes or no"),
    ("mode: block\n", 1, "mode: expected one of: enforce, warn"),
    ("action: pause\n", 1, "action: expected one of: kill, stop"),
    ("stop_timeout: yes\n", 1, "stop_timeout: expected a whole number"),
    ("stop_timeout: -1\n", 1, "stop_timeout: expected a whole number"),
    ("syslog_ident: ''\n", 1, "syslog_ident: expected a non-empty string"),
    ("debug: yes\ndegub: yes\n", 2, "degub: a container section must be a mapping"),
    ("x y:\n  privileged: yes\n", 1, "unknown key 'x y'"),
    ("web: {}\nweb:\n  privileged: yes\n", 2, "duplicate key 'web' (first on line 1)"),
    ("- a\n- b\n", 1, "must be a mapping"),
    ("!!python/object/apply:os.system ['true']\n", 1, "YAML error: could not determine a constructor"),
])
def test_errors_name_the_line_and_the_key(text, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yml")
    assert str(err.value).startswith(f"p.yml:{line}: ")
    assert words in str(err.value)


def test_config_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config("/x/explicit.yml") == Path("/x/explicit.yml")
    (tmp_path / "docker-covenant.yml").write_text("debug: no\n")
    assert find_config(None) == Path("docker-covenant.yml")


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "covenant", *args], check=False, capture_output=True,
                          text=True, cwd=cwd, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(("text", "where"), [
    ("debug: yes\nweb:\n  privileged: [no\n", ":4: YAML syntax error"),
    ("web:\n  cap_drop_requird: yes\n", ":2: web: unknown key 'cap_drop_requird'"),
    ("web:\n  privileged: 3\n", ":2: web.privileged: expected yes or no, got 3"),
])
def test_bad_policy_file_exits_2_naming_file_and_line(tmp_path, text, where):
    bad = tmp_path / "bad.yml"
    bad.write_text(text)
    result = run_cli("--config", str(bad))
    assert result.returncode == 2
    assert f"docker-covenant: error: {bad}{where}" in result.stderr


def test_missing_policy_file_exits_2(tmp_path):
    result = run_cli(cwd=tmp_path) if not Path("/etc/docker-covenant/docker-covenant.yml").exists() \
        else run_cli("--config", str(tmp_path / "none.yml"))
    assert result.returncode == 2
    assert "docker-covenant: error:" in result.stderr


def test_check_config_prints_the_effective_policy():
    result = run_cli("--config", str(REPO / "docker-covenant.yml"), "--check-config")
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["containers"]["privoxy"]["security_opt_required"] is False
    assert {k: effective["defaults"][k] for k in ("privileged", "cap_drop_required",
                                                  "security_opt_required")} == {
        "privileged": False, "cap_drop_required": True, "security_opt_required": True}
    assert effective["profile"] == "original"
    assert effective["mode"] == "enforce"
