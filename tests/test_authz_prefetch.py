"""The inspect fetched when a create is done answers the start's lookup only while no
update or rename could have changed the container (pure, with a counting engine)."""

from __future__ import annotations

import base64
import json
import threading

from covenant.authz.prefetch import Prefetching

FULL = "a" * 64


class Counting:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.version = 0
        self.gate = threading.Event()
        self.gate.set()

    def container(self, ref: str) -> dict:
        self.gate.wait(5)
        self.calls.append(ref)
        return {"Id": FULL, "Name": "/x", "Version": self.version}


def created(engine: Prefetching, container_id: str = FULL, status: int = 201) -> None:
    body = base64.b64encode(json.dumps({"Id": container_id, "Warnings": []}).encode()).decode()
    engine.done({"RequestMethod": "POST", "RequestUri": "/v1.41/containers/create?name=x",
                 "ResponseStatusCode": status, "ResponseBody": body})


def test_a_start_after_its_create_uses_the_inspect_fetched_then_once():
    inner = Counting()
    engine = Prefetching(inner)
    created(engine)
    assert engine.container(FULL)["Id"] == FULL
    assert inner.calls == [FULL]  # fetched once, at the create
    engine.container(FULL)
    assert inner.calls == [FULL, FULL]  # used once: the next lookup asks again


def test_an_update_or_a_rename_in_between_makes_the_start_ask_afresh():
    for change in ("/v1.41/containers/x/update", f"/v1.41/containers/{FULL}/rename?name=y"):
        for when in ("requested", "done"):
            inner = Counting()
            engine = Prefetching(inner)
            created(engine)
            engine.container("x")  # a lookup by name never uses what was fetched
            if when == "requested":
                engine.requested("POST", change)
            else:
                engine.done({"RequestMethod": "POST", "RequestUri": change, "ResponseStatusCode": 200})
            inner.version = 1
            assert engine.container(FULL)["Version"] == 1, (change, when)


def test_a_change_while_the_fetch_is_in_flight_discards_it():
    inner = Counting()
    inner.gate.clear()  # the fetch waits
    engine = Prefetching(inner)
    created(engine)
    engine.requested("POST", "/v1.41/containers/x/update")
    inner.version = 1
    inner.gate.set()
    assert engine.container(FULL)["Version"] == 1


def test_only_a_successful_create_of_a_full_id_is_fetched():
    inner = Counting()
    engine = Prefetching(inner)
    created(engine, status=500)
    created(engine, container_id="abc")
    engine.done({"RequestMethod": "POST", "RequestUri": "/v1.41/containers/create", "ResponseStatusCode": 201,
                 "ResponseBody": "not base64!"})
    assert inner.calls == []


class CountingExecs:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def exec(self, exec_id: str) -> dict:
        self.calls.append(exec_id)
        return {"ID": exec_id, "ProcessConfig": {"privileged": False, "user": "1000"}}


def test_an_exec_start_after_its_create_uses_the_exec_inspect_fetched_then_once():
    inner = CountingExecs()
    engine = Prefetching(inner)  # type: ignore[arg-type]
    body = base64.b64encode(json.dumps({"Id": FULL}).encode()).decode()
    engine.done({"RequestMethod": "POST", "RequestUri": "/v1.43/containers/x/exec",
                 "ResponseStatusCode": 201, "ResponseBody": body})
    # an exec cannot be changed: a rename or update meanwhile does not matter
    engine.requested("POST", "/v1.43/containers/x/update")
    assert engine.exec(FULL)["ProcessConfig"]["user"] == "1000"
    assert inner.calls == [FULL]
    engine.exec(FULL)
    engine.exec("b" * 12)  # not a full id: always asked
    assert inner.calls == [FULL, FULL, "b" * 12]
