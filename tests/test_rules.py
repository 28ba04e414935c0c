"""API request rules (covenant/rules): parsing with file:line errors and pure matching."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from covenant.authz.route import route
from covenant.policy import PolicyError, parse_policy
from covenant.rules import ApiCall, judge, lookups_needed, rename_escape

REPO = Path(__file__).resolve().parent.parent

POLICY = """\
groups:
  ops: [alice, carol]
api_rules:
  - name: no-cp-into-db
    deny: PUT /containers/{container}/archive
    containers: ['db-*']
  - name: no-exec-into-prod
    deny: POST /containers/{container}/exec
    containers: ['prod-*']
    except_users: ['@ops']
  - name: no-volume-rm
    deny: DELETE /volumes/*
  - name: bob-reads-only
    deny: POST|PUT|DELETE /*
    users: [bob]
"""


def box(name: str, **labels: str) -> dict:
    """A container as dockerd's inspect has it, as far as selectors read it."""
    return {"Id": "f" * 64, "Name": f"/{name}", "Config": {"Image": "busybox", "Labels": labels}}


def call(method: str, uri: str, user: str = "") -> ApiCall:
    """As the plugin builds it: the path as dockerd routes it."""
    return ApiCall(method, route(uri).path, user)


def test_rules_parse_and_keep_file_order():
    policy = parse_policy(POLICY)
    assert [r.name for r in policy.api_rules] == ["no-cp-into-db", "no-exec-into-prod", "no-volume-rm",
                                                  "bob-reads-only"]
    assert policy.groups == {"ops": ("alice", "carol")}
    assert policy.api_rules[0].line == 4  # the "- name:" line


def test_existing_files_have_no_rules():
    policy = parse_policy((REPO / "docker-covenant.yml").read_text())
    assert policy.api_rules == () and policy.groups == {}


@pytest.mark.parametrize("uri", [
    "/containers/abc/archive?path=/tmp", "/v1.41/containers/abc/archive", "/v1.41.0/containers/ab%63/archive",
    "http://docker/v1.45/containers/abc/archive"])
def test_a_path_is_matched_as_dockerd_routes_it(uri):
    rules = parse_policy(POLICY).api_rules
    c = call("PUT", uri)
    assert lookups_needed(rules, c) == {("container", "abc")}
    denial = judge(rules, {}, c, {("container", "abc"): box("db-1")})
    assert denial is not None and denial.rule == "no-cp-into-db"
    assert denial.message == ("[rule no-cp-into-db] PUT /containers/abc/archive is not allowed on "
                              "container db-1")


def test_container_rules_bind_by_the_resolved_name():
    policy = parse_policy(POLICY)
    c = call("PUT", "/v1.41/containers/abc/archive", "alice")  # alice: bob's rule does not bind her
    assert judge(policy.api_rules, policy.groups, c, {("container", "abc"): box("web-1")}) is None
    assert judge(policy.api_rules, policy.groups, call("GET", "/containers/abc/archive"), {}) is None


def test_an_unresolved_reference_is_a_deny():
    policy = parse_policy(POLICY)
    denial = judge(policy.api_rules, policy.groups, call("PUT", "/containers/gone/archive"),
                   {("container", "gone"): None})
    assert denial is not None and "no container 'gone' to check the rule against" in denial.message


def test_rules_without_containers_need_no_lookup():
    policy = parse_policy(POLICY)
    c = call("DELETE", "/v1.41/volumes/data")
    assert lookups_needed(policy.api_rules, c) == set()
    denial = judge(policy.api_rules, policy.groups, c, {})
    assert denial is not None and denial.message == "[rule no-volume-rm] DELETE /volumes/data is not allowed"
    assert judge(policy.api_rules, policy.groups, call("GET", "/volumes/data"), {}) is None


def test_users_and_groups_and_no_user_fails_closed():
    policy = parse_policy(POLICY)
    prod = {("container", "p"): box("prod-1")}
    exec_call = "/v1.41/containers/p/exec"
    for user in ("alice", "carol"):  # in @ops: excepted
        assert judge(policy.api_rules, policy.groups, call("POST", exec_call, user), prod) is None
    denied = judge(policy.api_rules, policy.groups, call("POST", exec_call, "dave"), prod)
    assert denied is not None and denied.message.endswith("on container prod-1 (user dave)")
    unknown = judge(policy.api_rules, policy.groups, call("POST", exec_call), prod)
    assert unknown is not None and "no authenticated user" in unknown.message
    # a rule on users binds only them, and anyone unknown
    assert judge(policy.api_rules, policy.groups, call("POST", "/containers/create", "alice"), {}) is None
    bob = judge(policy.api_rules, policy.groups, call("POST", "/containers/create", "bob"), {})
    assert bob is not None and bob.rule == "bob-reads-only"
    anyone = judge(policy.api_rules, policy.groups, call("POST", "/containers/create"), {})
    assert anyone is not None and anyone.rule == "bob-reads-only"
    assert "no authenticated user" in anyone.message


def test_exec_placeholder():
    policy = parse_policy("api_rules:\n  - name: r\n    deny: POST /exec/{exec}/start\n"
                          "    containers: [db-*]\n")
    c = call("POST", "/v1.41/exec/e1/start")
    assert lookups_needed(policy.api_rules, c) == {("exec", "e1")}
    assert judge(policy.api_rules, {}, c, {("exec", "e1"): box("db-2")}) is not None
    assert judge(policy.api_rules, {}, c, {("exec", "e1"): box("web")}) is None


def test_a_rename_out_of_a_rules_containers_is_refused():
    policy = parse_policy(POLICY)
    out = rename_escape(policy.api_rules, policy.groups, box("db-1"), "web-1", "")
    assert out is not None and out.rule == "no-cp-into-db" and "would take it out" in out.message
    assert rename_escape(policy.api_rules, policy.groups, box("db-1"), "db-2", "") is None
    assert rename_escape(policy.api_rules, policy.groups, box("web-1"), "db-1", "") is None
    # @ops are excepted from the prod rule, so they may rename prod containers; others not
    assert rename_escape(policy.api_rules, policy.groups, box("prod-1"), "x", "alice") is None
    assert rename_escape(policy.api_rules, policy.groups, box("prod-1"), "x", "dave") is not None


@pytest.mark.parametrize(("text", "line", "words"), [
    ("api_rules: {a: 1}\n", 1, "api_rules: expected a list of rules"),
    ("api_rules:\n  - name: a\n    deny: PUT\n", 3, "api_rules[0] (a).deny: expected 'METHOD /path'"),
    ("api_rules:\n  - name: a\n    deny: PATCH /x\n", 3, "unknown method 'PATCH'"),
    ("api_rules:\n  - name: a\n    deny: PUT /x\n    containers: [db-*]\n", 4, "the path names no container"),
    ("api_rules:\n  - name: a\n    deny: PUT /x/{id}\n", 3, "at most one placeholder"),
    ("api_rules:\n  - name: a\n    deny: PUT /x\n    users: ['@ops']\n", 4,
     "no group 'ops' under groups:"),
    ("api_rules:\n  - name: a\n    deny: PUT /x\n    user: [bob]\n", 4, "unknown key 'user'"),
    ("api_rules:\n  - name: a\n    deny: PUT /x\n  - name: a\n    deny: GET /x\n", 4,
     "'a' names an earlier rule too"),
    ("api_rules:\n  - deny: PUT /x\n", 2, "api_rules[0].name: expected a rule name"),
    ("groups:\n  ops: alice\n", 2, "groups.ops: expected a list of user names"),
])
def test_rule_errors_name_the_line_and_the_key(text, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yml")
    assert str(err.value).startswith(f"p.yml:{line}: "), str(err.value)
    assert words in str(err.value)


def test_rules_listing(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text(POLICY)
    out = subprocess.run([sys.executable, "-m", "covenant", "rules", "--config", str(path)], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["RULE", "DENY", "CONTAINERS", "USERS", "EXCEPT"]
    assert lines[1].split() == ["no-cp-into-db", "PUT", "/containers/{container}/archive", "db-*", "*", "-"]
    assert lines[3].split() == ["no-volume-rm", "DELETE", "/volumes/*", "*", "*", "-"]
    assert lines[-1] == "group ops: alice, carol"


USERS = """\
groups:
  ops: [alice]
user=@ops:
  privileged: yes
web-*:
  privileged: no
api_rules:
  - name: bob-runs-only-his-team
    deny: POST /containers/{container}/start
    users: [bob]
    except_containers: ['label=team=bob']
"""


def test_a_rule_can_except_containers_by_label():
    policy = parse_policy(USERS)
    start = call("POST", "/v1.41/containers/x/start", "bob")
    theirs = judge(policy.api_rules, policy.groups, start, {("container", "x"): box("x", team="alice")})
    assert theirs is not None
    assert theirs.message == ("[rule bob-runs-only-his-team] POST /containers/x/start is not allowed on "
                              "container x (user bob)")
    assert judge(policy.api_rules, policy.groups, start, {("container", "x"): box("x", team="bob")}) is None
    alice = call("POST", "/v1.41/containers/x/start", "alice")
    assert judge(policy.api_rules, policy.groups, alice, {("container", "x"): box("x", team="alice")}) is None
    # a rename keeps the labels: nothing to escape
    assert rename_escape(policy.api_rules, policy.groups, box("x", team="alice"), "y", "bob") is None


def test_user_sections_apply_to_their_users_only():
    """A user= section is applied where the plugin judges an exec for that user; it
    beats every other section; without a user nothing selects it."""
    policy = parse_policy(USERS)
    web = box("web-1")
    assert policy.resolve(web, "alice")[0]["privileged"] is True  # beats web-*
    assert policy.resolve(web, "bob")[0]["privileged"] is False
    assert policy.resolve(web)[0]["privileged"] is False
    assert policy.resolve(box("db"), "")[0]["privileged"] is False


@pytest.mark.parametrize(("text", "line", "words"), [
    ("user=@ops:\n  privileged: yes\n", 1, "user=@ops: no group 'ops' under groups: (known: none)"),
    ("api_rules:\n  - name: a\n    deny: POST /containers/{container}/start\n"
     "    except_containers: ['a b']\n", 4, "except_containers: 'a b' is neither a container name"),
    ("api_rules:\n  - name: a\n    deny: POST /x\n    except_containers: ['label=a']\n", 4,
     "except_containers: the path names no container"),
])
def test_user_and_selector_errors_name_the_line(text, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yml")
    assert str(err.value).startswith(f"p.yml:{line}: "), str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize("deny", ["GET /containers/{container}/json", "* /containers/{container}/*",
                                  "GET|HEAD /exec/{exec}/*", "* /*/{container}/json"])
def test_a_container_rule_that_would_match_the_plugins_own_lookup_is_refused(deny):
    """The plugin resolves {container} with GET /containers/ID/json, which dockerd sends
    through the plugin too: a container rule matching it would look up again, forever."""
    with pytest.raises(PolicyError) as err:
        parse_policy(f"api_rules:\n  - name: a\n    deny: '{deny}'\n    containers: [db-*]\n", "p.yml")
    assert str(err.value).startswith("p.yml:3: api_rules[0] (a).deny: it matches GET /")
    assert "the lookup the plugin itself makes" in str(err.value)
    # without a container to look up there is no loop
    assert parse_policy(f"api_rules:\n  - name: a\n    deny: '{deny.replace('{exec}', '*')}'\n").api_rules
