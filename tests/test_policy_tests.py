"""`docker-covenant test`: policy test files through the CLI (no engine needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import REPO

DATA = REPO / "policy-tests" / "data"


def covenant_test(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "covenant", "test", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=cwd, timeout=60,
                          check=False)


def test_the_sample_policies_pass_their_tests():
    files = sorted((REPO / "policy-tests").glob("*.yml"))
    assert len(files) == 2
    result = covenant_test("-v", *files, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "16 passed, 0 failed"
    assert sum(1 for line in lines if line.startswith("ok ")) == 16
    assert "(web (shop-web-1)): [CV001, CV002, CV003]" in result.stdout  # a compose service
    assert "(create web): [CV001, CV002, CV003]" in result.stdout
    assert result.stderr == ""


POLICY = """debug: no
profile: original
web*:
  privileged: yes
  cap_drop_required: no
groups:
  ops: [alice]
api_rules:
  - name: only-ops-create
    deny: POST /containers/create
    except_users: ['@ops']
quotas:
  - name: per-user
    max_running: 2
    per: user
"""

PASSING = f"""policy: policy.yml
cases:
  - name: a privileged web, by its section
    inspect: {DATA / 'sample-policy.json'}
    container: web
    expect: [CV003]
  - name: inline inspect, several containers, each must match
    inspect:
      - {{Name: /a, Config: {{Image: busybox}},
         HostConfig: {{CapDrop: [ALL], SecurityOpt: [no-new-privileges]}}}}
      - {{Name: /b, Config: {{Image: busybox}}, HostConfig: {{CapDrop: [all], SecurityOpt: [apparmor=x]}}}}
    expect: allowed
  - name: the rule refuses a create by bob
    create: {{name: web-1, user: bob, body: {{Image: busybox}}}}
    expect: [rule:only-ops-create]
  - name: alice must label her container for the per-user quota
    create: {{name: app, user: alice, body: {{Image: busybox, HostConfig: {{CapDrop: [ALL],
              SecurityOpt: [no-new-privileges]}}}}}}
    expect: [quota:per-user]
  - name: labelled, it passes
    create:
      name: app
      user: alice
      body: {{Image: busybox, Labels: {{docker-covenant.user: alice}},
              HostConfig: {{CapDrop: [ALL], SecurityOpt: [no-new-privileges]}}}}
    expect: allowed
  - name: the body is read as dockerd reads it (keys case-insensitively)
    create: {{name: app, user: alice, body: '{{"image": "busybox",
              "labels": {{"docker-covenant.user": "alice"}}, "hostconfig": {{"privileged": true,
              "capdrop": ["ALL"], "securityopt": ["no-new-privileges"]}}}}'}}
    expect: [CV001]
"""


def test_a_passing_suite(tmp_path):
    (tmp_path / "policy.yml").write_text(POLICY)
    (tmp_path / "suite.yml").write_text(PASSING)
    quiet = covenant_test(tmp_path / "suite.yml")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "6 passed, 0 failed\n", "")
    verbose = covenant_test("-v", tmp_path / "suite.yml")
    assert verbose.returncode == 0
    lines = verbose.stdout.splitlines()
    assert lines[0] == f"ok    {tmp_path / 'suite.yml'}:3: a privileged web, by its section (web): [CV003]"
    assert lines[1].endswith("inline inspect, several containers, each must match (a, b): allowed")
    assert lines[2].endswith("the rule refuses a create by bob (create web-1): [rule:only-ops-create]")
    assert len(lines) == 7 and lines[-1] == "6 passed, 0 failed"


def test_a_failing_suite_names_each_failure_and_what_differs(tmp_path):
    (tmp_path / "policy.yml").write_text(POLICY)
    (tmp_path / "suite.yml").write_text(f"""policy: policy.yml
cases:
  - name: passes
    inspect: {DATA / 'sample-policy.json'}
    container: app
    expect: allowed
  - name: web is not allowed after all
    inspect: {DATA / 'sample-policy.json'}
    container: web
    expect: allowed
  - name: wrong set
    create: {{name: app, user: alice, body: {{Image: busybox, Labels: {{docker-covenant.user: alice}},
              HostConfig: {{CapDrop: [ALL]}}}}}}
    expect: [CV001, CV003]
""")
    result = covenant_test(tmp_path / "suite.yml")
    assert result.returncode == 1, result.stderr
    suite = tmp_path / "suite.yml"
    assert result.stdout.splitlines() == [
        f"FAIL  {suite}:7: web is not allowed after all (web): expected allowed, got [CV003]",
        "        unexpected [CV003] web: no security options has been set",
        f"FAIL  {suite}:11: wrong set (create app): expected [CV001, CV003], got [CV003]",
        "        missing CV001",
        "1 passed, 2 failed",
    ]
    verbose = covenant_test("-v", suite)
    assert verbose.stdout.splitlines()[0] == f"ok    {suite}:3: passes (app): allowed"
    # --config replaces the files' policy: under the sample policy web is refused for CV001 too
    other = covenant_test("--config", REPO / "docker-covenant.yml", suite)
    assert other.returncode == 1 and "got [CV001, CV002, CV003]" in other.stdout


def test_a_compose_case_fails_when_the_service_breaks_the_policy(tmp_path):
    (tmp_path / "suite.yml").write_text(f"""policy: {REPO}/docker-covenant.yml
cases:
  - name: web is expected to pass but is privileged
    compose: {DATA}/compose.yml
    service: web
    expect: allowed
  - name: every service of the project, each must be allowed
    compose: {DATA}/compose.yml
    project: shop
    expect: allowed
""")
    result = covenant_test("-v", tmp_path / "suite.yml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "0 passed, 2 failed"
    # without a project: the folder's name, as compose names it
    assert "unexpected [CV001] data-web-1: privileged set but not allowed" in result.stdout
    assert "unexpected [CV001] shop-web-1: privileged set but not allowed" in result.stdout


def test_bad_files_exit_2_with_file_and_line(tmp_path):
    (tmp_path / "policy.yml").write_text(POLICY)
    (tmp_path / "bad-policy.yml").write_text("web:\n  privileged: maybe\n")
    (tmp_path / "one.json").write_text("[\n{not json")
    head = "policy: policy.yml\ncases:\n  - name: x\n"
    cases = {
        "syntax.yml": (head + "    expect: [\n", "syntax.yml:5: YAML syntax error"),
        "nocase.yml": ("policy: policy.yml\ncases: []\n", "nocase.yml:2: cases: expected a list of cases"),
        "key.yml": ("policy: policy.yml\nkases: []\n", "key.yml:2: unknown key 'kases'"),
        "two.yml": (head + "    expect: allowed\n    inspect: {}\n    create: {}\n",
                    "two.yml:3: a case has exactly one input (inspect, create, compose); "
                    "got inspect, create"),
        "compose.yml": (head + "    compose: nothere.yml\n    expect: allowed\n",
                        "compose.yml:4: compose: "),
        "service.yml": (head + f"    compose: {DATA}/compose.yml\n    service: db\n    expect: allowed\n",
                        "service.yml:4: service: no service 'db' in "),
        "id.yml": (head + "    inspect: one.json\n    expect: [CV001, CV9]\n",
                   "id.yml:5: expect: unknown check id 'CV9'"),
        "missing.yml": (head + "    inspect: nothere.json\n    expect: allowed\n",
                        "missing.yml:4: inspect: cannot read nothere.json: No such file or directory"),
        "json.yml": (head + "    inspect: one.json\n    expect: allowed\n", "json.yml:4: inspect: "),
        "extra.yml": (head + "    create: {body: {}}\n    container: web\n    expect: allowed\n",
                      "extra.yml:5: unknown key 'container' in a create case"),
        "body.yml": (head + "    create: {user: alice, body: '{\"HostConfig\": 3}'}\n    expect: allowed\n",
                     "body.yml:4: create: the plugin cannot read this body"),
        "nopolicy.yml": ("cases:\n  - name: x\n    inspect: one.json\n    expect: allowed\n",
                         "nopolicy.yml:1: no policy"),
        "badpolicy.yml": ("# the policy\npolicy: bad-policy.yml\ncases:\n  - name: x\n    inspect: {}\n"
                          "    expect: allowed\n", f"badpolicy.yml:2: policy: {tmp_path}/bad-policy.yml:2: "
                          "web.privileged: expected yes or no"),
    }
    for name, (text, error) in cases.items():
        (tmp_path / name).write_text(text)
        result = covenant_test(tmp_path / name)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert result.stderr.startswith(f"docker-covenant: error: {tmp_path}/{error}"), (name, result.stderr)
        assert result.stdout.splitlines()[-1].endswith("1 errors"), (name, result.stdout)
    unreadable = covenant_test(tmp_path / "nothere.yml")
    assert unreadable.returncode == 2 and "nothere.yml: cannot read test file" in unreadable.stderr
    # an error in one file does not stop the others: a failing case still counts, exit 2
    inline = json.dumps({"Name": "/x", "HostConfig": {}})
    (tmp_path / "fails.yml").write_text(f"{head}    inspect: {inline}\n    expect: allowed\n")
    both = covenant_test(tmp_path / "id.yml", tmp_path / "fails.yml")
    assert both.returncode == 2 and both.stdout.splitlines()[-1] == "0 passed, 1 failed, 1 errors"
