"""Reading a create request as dockerd reads it (pure; the engine-side proof is test_authz.py)."""

from __future__ import annotations

import base64
import json

import pytest

from covenant.authz import MISSING, MalformedRequestError, Pairs, container_of_create, decide_request, field
from covenant.policy import parse_policy

POLICY = parse_policy("ops:\n  privileged: yes\n  cap_drop_required: no\n  security_opt_required: no\n")


def pairs(text: str) -> Pairs:
    return json.loads(text, object_pairs_hook=Pairs)


def req(uri: str, body: str | None = None, method: str = "POST") -> dict:
    out = {"RequestMethod": method, "RequestUri": uri, "User": ""}
    if body is not None:
        out["RequestBody"] = base64.b64encode(body.encode()).decode()
    return out


def lookup(ref: str) -> str | None:
    return {"abc123": "ops", "ops": "ops", "web": "web"}.get(ref)


def test_field_follows_go_encoding_json():
    assert field(pairs('{"privileged": true}'), "Privileged") is True
    assert field(pairs('{"Privileged": true, "privileged": false}'), "Privileged") is False  # last wins
    assert field(pairs('{"\\u017fecurityOpt": ["x"]}'), "SecurityOpt") == ["x"]  # long s folds to s
    merged = field(pairs('{"HostConfig": {"Privileged": true}, "hostconfig": {"Memory": 1}}'), "HostConfig")
    assert (field(merged, "Privileged"), field(merged, "Memory")) == (True, 1)
    assert field(pairs('{"HostConfig": {"Privileged": true}, "HostConfig": null}'), "HostConfig") is None
    assert field(pairs("{}"), "HostConfig") is MISSING


def test_host_config_from_the_top_level_only_without_an_inner_one():
    top = container_of_create(pairs('{"Image": "x", "Privileged": true}'), "a")
    assert top["HostConfig"]["Privileged"] is True
    ignored = container_of_create(pairs('{"Privileged": true, "HostConfig": {"CapDrop": ["ALL"]}}'), "a")
    assert "Privileged" not in ignored["HostConfig"]  # dockerd uses the inner one
    fallback = container_of_create(pairs('{"Memory": 5, "HostConfig": {"CapDrop": ["ALL"]}}'), "a")
    assert fallback["HostConfig"]["Memory"] == 5  # ...but fills Memory from the top level


def test_create_is_judged_by_name_from_the_query():
    body = '{"Image": "x", "HostConfig": {"Privileged": true}}'
    assert decide_request(POLICY, req("/v1.41/containers/create?name=ops", body), lookup).allow
    denied = decide_request(POLICY, req("/v1.41/containers/create?name=web", body), lookup)
    assert not denied.allow and denied.msg.startswith("[CV001] web: privileged set but not allowed; [CV002]")
    encoded = decide_request(POLICY, req("/v1.41/containers/%63reate?name=%77eb", body), lookup)
    assert not encoded.allow and encoded.name == "web"


def test_writes_without_a_visible_body_and_legacy_start_are_denied():
    assert not decide_request(POLICY, req("/v1.41/containers/create?name=ops"), lookup).allow
    assert not decide_request(POLICY, req("/v1.41/containers/abc/exec"), lookup).allow
    assert not decide_request(POLICY, req("/v1.23/containers/abc/start"), lookup).allow
    assert decide_request(POLICY, req("/v1.41/containers/abc/start"), lookup).allow
    assert decide_request(POLICY, req("/v1.41/containers/json", method="GET"), lookup).allow


def test_privileged_exec_needs_a_section_that_allows_privileged():
    body = '{"Cmd": ["sh"], "privileged": true}'
    assert decide_request(POLICY, req("/containers/abc123/exec", body), lookup).allow
    assert not decide_request(POLICY, req("/containers/web/exec", body), lookup).allow
    assert not decide_request(POLICY, req("/containers/unknown/exec", body), lookup).allow
    assert decide_request(POLICY, req("/containers/web/exec", '{"Cmd": ["sh"]}'), lookup).allow


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", "!!!"])
def test_malformed_bodies_raise(body):
    request = req("/v1.41/containers/create?name=a", body)
    if body == "!!!":
        request["RequestBody"] = "!!!"
    with pytest.raises(MalformedRequestError):
        decide_request(POLICY, request, lookup)
