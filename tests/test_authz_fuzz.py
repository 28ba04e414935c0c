"""Fuzzing the authorization plugin through a real dockerd: mutated create and exec
requests (keys, casing, Unicode, nulls, duplicates, nesting, numbers, URIs, version
strings, framing, content types), each followed by a start of whatever was created.

Afterwards nothing privileged may run: no container or exec with CAP_SYS_ADMIN, no
container the policy refuses. Alongside, ``/_ping`` (which also passes the plugin) must
stay fast. A sample of the same requests sent to a dockerd without the plugin shows that
the corpus does hold violators that run. ``COVENANT_FUZZ_SEED`` replays a run.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker
import pytest
from harness import AUTHZ_BASE_POLICY, IMAGE, UnixHTTP, unique
from test_authz_walkarounds import CAP_SYS_ADMIN, cap_eff

from covenant.policy import parse_policy

CREATES = 800
EXECS = 300
SAMPLE = 120  # of the creates, also sent to the control

Pairs = list[tuple[str, Any]]


@dataclass(frozen=True)
class Obj:
    """A JSON object as written: keys may repeat."""
    pairs: Pairs


class Raw(str):
    """JSON text written as is (a number too long for Python's int-to-str limit)."""


VIOLATORS: list[Pairs] = [
    [("Privileged", True), ("NetworkMode", "none")],
    [("CapAdd", ["ALL"]), ("CapDrop", ["ALL"]), ("SecurityOpt", ["no-new-privileges"]),
     ("NetworkMode", "none")],
    [("Privileged", True), ("CapDrop", ["ALL"]), ("SecurityOpt", ["no-new-privileges"]),
     ("NetworkMode", "none")],
]
COMPLIANT: Pairs = [("CapDrop", ["ALL"]), ("SecurityOpt", ["no-new-privileges"]), ("NetworkMode", "none")]
ROUTED = ["/v1.41", "/v1.41.0", "/v1.40", "/v01.41", "/v1.24", "/v1.23", "/v1.12", "", "/v1.41.0.0"]
UNROUTED = ["/v1", "/v.", "/V1.41", "/v1.41/", "/v9.99"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "Application/JSON", "text/plain", "",
                 "application/x-www-form-urlencoded", "application/json;", "application/jsonx"]


class Mutator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def key(self, key: str) -> str:
        """A key Go may still match: case flips, long s for s, Kelvin for k, \\u escapes,
        and a few characters that only Unicode-wide folding would match."""
        return "".join(self.key_char(ch) for ch in key)

    def key_char(self, ch: str) -> str:
        roll = self.rng.random()
        if roll < 0.08:
            return ch.swapcase()
        if roll < 0.12 and ch in "sS":
            return "\\u017f"
        if roll < 0.16 and ch in "kK":
            return "\\u212a"
        if roll < 0.2:
            return f"\\u{ord(ch):04x}"
        if roll < 0.21 and ch in "is":
            return self.rng.choice(["\\u0131", "\\ufb06", "\\u00df", "\\udcff", "\x00"])
        return ch

    def value(self, value: Any, depth: int = 0) -> str:
        if self.chance(0.03):
            return "null"
        if isinstance(value, Raw):
            return str(value)
        if isinstance(value, Obj):
            return self.obj(value.pairs, depth + 1)
        if isinstance(value, list) and self.chance(0.1) and value:
            return json.dumps(value[0])  # a string where Go's StrSlice takes one
        if isinstance(value, bool) and self.chance(0.05):
            return self.rng.choice(["1", '"true"', "tru", "TRUE"])
        return json.dumps(value)

    def obj(self, pairs: Pairs, depth: int = 0) -> str:
        pairs = list(pairs)
        if self.chance(0.25) and pairs:  # a repeated key, before or after, with another value
            k, v = self.rng.choice(pairs)
            other = self.rng.choice([None, False, True, [], {}, "", 0, v])
            pairs.insert(self.rng.randrange(len(pairs) + 1), (k, other))
        if self.chance(0.15):
            pairs.insert(self.rng.randrange(len(pairs) + 1), ("X", self.filler()))
        if self.chance(0.1) and pairs:
            pairs.pop(self.rng.randrange(len(pairs)))
        self.rng.shuffle(pairs) if self.chance(0.2) else None
        items = []
        for k, v in pairs:
            text = "null" if v is None else self.value(v, depth)
            items.append(f'"{self.key(k)}":{" " * self.rng.randrange(3)}{text}')
        return "{" + ", ".join(items) + "}"

    def filler(self) -> Obj | list[Any] | Raw | str:
        kind = self.rng.randrange(5)
        if kind == 0:
            return json.loads("[" * 50 + "]" * 50)
        if kind == 1:
            return Raw("9" * self.rng.randrange(18, 6000))
        if kind == 2:
            return "\u017f" * self.rng.randrange(1, 50)
        if kind == 3:
            return Obj([("HostConfig", Obj([("Privileged", True)]))])
        return []

    def framing(self, body: str) -> bytes:
        roll = self.rng.random()
        if roll < 0.05:
            body += ' {"HostConfig": {"Privileged": false}}'
        elif roll < 0.08:
            body = body[: self.rng.randrange(len(body))]
        elif roll < 0.11:
            body = "\ufeff" + body
        elif roll < 0.14:
            body = "X" + body
        elif roll < 0.18:
            body = body.replace("{", "{" + '"Y": ' + "[" * 3000 + "]" * 3000 + ", ", 1)
        return body.encode("utf-8", "surrogatepass")

    def version(self) -> str:
        return self.rng.choice(ROUTED if self.chance(0.85) else UNROUTED)

    def target(self, path: str) -> str:
        version = self.version()
        if self.chance(0.1):
            path = "".join(f"%{ord(c):02x}" if c.isalpha() and self.chance(0.3) else c for c in path)
        target = version + path
        if self.chance(0.05):
            target = "http://docker" + target
        return target

    def headers(self) -> dict[str, str]:
        content_type = self.rng.choice(CONTENT_TYPES) if self.chance(0.3) else "application/json"
        return {"Content-Type": content_type} if content_type else {}

    def create(self, name: str) -> tuple[str, bytes, dict[str, str], bool]:
        host = list(self.rng.choice(VIOLATORS) if self.chance(0.85) else COMPLIANT)
        top: Pairs = [("Image", IMAGE), ("Cmd", ["sleep", "300"])]
        # HostConfig fields at the top level, as old clients sent them
        body = top + host if self.chance(0.1) else [*top, ("HostConfig", Obj(host))]
        query = f"?name={name}" if not self.chance(0.03) else f"?name={name}&name=x;y"
        return (self.target("/containers/create") + query, self.framing(self.obj(body)), self.headers(),
                self.chance(0.1))

    def exec(self, target: str) -> tuple[str, bytes, dict[str, str], bool]:
        body: Pairs = [("Cmd", ["sleep", "60"]), ("Privileged", True)]
        return (self.target(f"/containers/{target}/exec"), self.framing(self.obj(body)), self.headers(),
                self.chance(0.1))


def send_create(http: UnixHTTP, request: tuple[str, bytes, dict[str, str], bool], name: str,
                start: str) -> None:
    target, body, headers, chunked = request
    status, _ = http.request("POST", target, body, headers, chunked=chunked)
    if status == 201:
        http.request("POST", f"{start}/containers/{name}/start")


def send_exec(http: UnixHTTP, request: tuple[str, bytes, dict[str, str], bool], start: str) -> None:
    target, body, headers, chunked = request
    status, text = http.request("POST", target, body, headers, chunked=chunked)
    if status == 201:
        exec_id = json.loads(text)["Id"]
        http.request("POST", f"{start}/exec/{exec_id}/start", b'{"Detach": true}',
                     {"Content-Type": "application/json"})


def privileged_processes(client: docker.DockerClient) -> list[str]:
    """Containers and execs running with CAP_SYS_ADMIN."""
    found = []
    for c in client.api.containers():
        stored = client.api.inspect_container(c["Id"])
        if stored["State"]["Pid"] and cap_eff(stored["State"]["Pid"]) & CAP_SYS_ADMIN:
            found.append(stored["Name"])
        for exec_id in stored.get("ExecIDs") or []:
            e = client.api.exec_inspect(exec_id)
            if e["Running"] and cap_eff(e["Pid"]) & CAP_SYS_ADMIN:
                found.append(f"{stored['Name']} exec {exec_id[:12]}")
    return found


class Pinger:
    """``/_ping`` every 50 ms on the guarded engine; the slowest answer."""

    def __init__(self, http: UnixHTTP) -> None:
        self.http, self.slowest, self.count = http, 0.0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            began = time.monotonic()
            status, _ = self.http.request("GET", "/_ping")
            assert status == 200
            self.slowest = max(self.slowest, time.monotonic() - began)
            self.count += 1


@pytest.fixture
def fuzz_seed() -> Iterator[int]:
    seed = int(os.environ.get("COVENANT_FUZZ_SEED") or random.randrange(2 ** 32))
    print(f"COVENANT_FUZZ_SEED={seed}")
    yield seed


def test_a_thousand_mutated_requests_run_nothing_privileged(bed, plugin_policy, dockerd, fuzz_seed):
    plugin_policy(AUTHZ_BASE_POLICY + "fail: open\n")  # the looser setting: unreadable bodies pass
    daemon, _, http = bed
    guarded = daemon.client()
    rng = random.Random(fuzz_seed)
    mutator = Mutator(rng)
    targets = [unique("fz-target") for _ in range(4)]
    for target in targets:
        guarded.containers.run(IMAGE, ["sleep", "600"], name=target, detach=True, network_mode="none",
                               cap_drop=["ALL"], security_opt=["no-new-privileges"])
    creates = [(unique("fz"), mutator.create, mutator.version()) for _ in range(CREATES)]
    requests = [(name, make(name), start) for name, make, start in creates]
    execs = [(mutator.exec(rng.choice(targets)), mutator.version()) for _ in range(EXECS)]
    pinger = Pinger(http)
    pinger.thread.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(send_create, http, request, name, start) for name, request, start in requests]
            jobs += [pool.submit(send_exec, http, request, start) for request, start in execs]
            for job in jobs:
                job.result()
    finally:
        pinger.stop.set()
        pinger.thread.join()
    try:
        assert privileged_processes(guarded) == []
        policy = parse_policy(AUTHZ_BASE_POLICY)
        running = [guarded.api.inspect_container(c["Id"]) for c in guarded.api.containers()]
        refused = [c["Name"] for c in running if not policy.decide(c).allowed]
        assert refused == [], "containers the policy refuses are running"
        assert pinger.count > 10 and pinger.slowest < 2.0, (pinger.count, pinger.slowest)
        started = sum(c["Name"].startswith("/fz-") and "target" not in c["Name"] for c in running)
        print(f"{len(requests) + len(execs)} requests; {started} compliant containers started; "
              f"slowest /_ping {pinger.slowest * 1000:.0f} ms")
    finally:
        for c in guarded.api.containers(all=True, filters={"name": "fz-"}):
            guarded.api.remove_container(c["Id"], force=True)
        guarded.close()
    # control: a sample of the same creates on an engine without the plugin runs violators
    control = dockerd.client()
    try:
        for name, request, start in rng.sample(requests, SAMPLE):
            send_create(UnixHTTP(dockerd.socket), request, name, start)
        ran = privileged_processes(control)
        print(f"control: {len(ran)} of {SAMPLE} sampled creates ran with CAP_SYS_ADMIN")
        assert len(ran) >= SAMPLE // 10, "the corpus holds too few violators that run: it proves little"
    finally:
        for c in control.api.containers(all=True, filters={"name": "fz-"}):
            control.api.remove_container(c["Id"], force=True)
        control.close()
