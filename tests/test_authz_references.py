"""The red team's walk-arounds of the authorization plugin's container references (F1-F6),
each sent as raw requests to the engine with the plugin and, as its control, to the engine
without it.

A start, restart or rename names its container by a reference that dockerd resolves
again after the plugin has answered, and a form body that dockerd reads after the plugin
has answered can override the query the plugin judged. Each case asserts, from the
engines themselves (``docker inspect`` State, /proc/<pid>/status CapEff), that the control
ran the violator -- so the steps are sound -- and that the guarded engine never did, and
that it was the plugin that refused (403 with its message). The deterministic form of
each finding is used: no retries of a race on the guarded side.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
from harness import AUTHZ_BASE_POLICY, IMAGE, PrivateDockerd, UnixHTTP, unique, wait_until
from test_authz_walkarounds import JSON, NEVER, PRIV_SECTION, Engine, privileged

POLICY = AUTHZ_BASE_POLICY + PRIV_SECTION  # priv-*: may run privileged; any other name may not
WARN = POLICY + "mode: warn\n"  # lets everything through: how a stored violator is made
PRIV = {"Privileged": True, "NetworkMode": "none"}
LOCKED = {"CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"], "NetworkMode": "none"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DENIED = "authorization denied by plugin"
UNSEEN = "a body the plugin"  # its refusal of a body it was not sent ("cannot read", "was not sent")


@pytest.fixture
def engines(bed, dockerd: PrivateDockerd) -> Iterator[tuple[Engine, Engine]]:
    """(the engine with the plugin, the control without it), as in test_authz_walkarounds;
    every container named in ``names`` is removed after the test."""
    guarded = Engine(bed[2], bed[0].client())
    control = Engine(UnixHTTP(dockerd.socket), dockerd.client())
    yield guarded, control
    for engine in (guarded, control):
        engine.clean()
        engine.client.close()


def create(engine: Engine, name: str, host: dict[str, Any], cmd: tuple[str, ...] = ("sleep", "300"),
           **extra: Any) -> str:
    """Create (not start) a container; its full id."""
    engine.names.append(name)
    body = json.dumps({"Image": IMAGE, "Cmd": list(cmd), "HostConfig": host, **extra}).encode()
    status, text = engine.http.request("POST", f"/v1.41/containers/create?name={name}", body, JSON)
    assert status == 201, text
    return str(json.loads(text)["Id"])


def post(engine: Engine, target: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, str]:
    return engine.http.request("POST", f"/v1.41{target}", body, headers or {})


def inspect(engine: Engine, ref: str) -> dict[str, Any] | None:
    try:
        return engine.client.api.inspect_container(ref)
    except docker.errors.NotFound:
        return None


def never_started(engine: Engine, ref: str) -> bool:
    stored = inspect(engine, ref)
    return stored is not None and not stored["State"]["Running"] and stored["State"]["StartedAt"] == NEVER


def gone(engine: Engine, ref: str) -> None:
    wait_until(lambda: inspect(engine, ref) is None, 15, 0.05, f"{ref} to be removed")


@contextlib.contextmanager
def warned(engine: Engine, guarded: Engine, plugin_policy: Callable[[str], None]) -> Iterator[None]:
    """On the guarded engine, with the plugin only warning: how a violator is stored (as one
    created before the policy was tightened would be)."""
    if engine is guarded:
        plugin_policy(WARN)
    try:
        yield
    finally:
        if engine is guarded:
            plugin_policy(POLICY)


def violator(engine: Engine, guarded: Engine, plugin_policy: Callable[[str], None]) -> tuple[str, str]:
    """V: a stopped privileged container under a name whose section forbids privileged;
    (its name, its full id). A direct start of it is refused behind the plugin."""
    name = unique("evil")
    with warned(engine, guarded, plugin_policy):
        full = create(engine, name, PRIV)
    if engine is guarded:
        status, text = post(engine, f"/containers/{name}/start")
        assert status == 403 and "[CV001]" in text, text
    return name, full


@dataclass
class Held:
    status: int
    text: str
    early: bool  # answered before the body was sent (dockerd itself waits for it)


def held(engine: Engine, target: str, body: bytes, meanwhile: Callable[[], None] = lambda: None) -> Held:
    """POST ``target`` with a form Content-Type and Content-Length, the body held back:
    dockerd's handler waits in ParseForm for it after the plugin has answered. Run
    ``meanwhile``, then send the body (unless the request was answered already)."""
    head = (f"POST /v1.41{target} HTTP/1.1\r\nHost: docker\r\nContent-Type: {FORM['Content-Type']}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(engine.http.path))
        s.sendall(head)
        early = bool(select.select([s], [], [], 0.5)[0])  # the plugin has answered by then
        meanwhile()
        early = early or bool(select.select([s], [], [], 0)[0])
        if not early:
            s.sendall(body)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return Held(int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace"), early)


def refused_unseen(answer: Held | tuple[int, str]) -> bool:
    status, text = (answer.status, answer.text) if isinstance(answer, Held) else answer
    return status == 403 and DENIED in text and UNSEEN in text


# -- F3: a rename's new name from a form body ------------------------------------------------

def test_a_rename_cannot_take_its_new_name_from_a_form_body(engines, plugin_policy):
    """F3: ``rename?name=SAME`` with the body ``name=evil``: dockerd's ParseForm lets the
    body's value win over the query's, which is all the plugin is sent."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        name = unique("priv")
        evil = name.replace("priv-", "evil-")
        engine.names.append(evil)
        create(engine, name, PRIV)
        assert post(engine, f"/containers/{name}/start")[0] == 204
        answer = post(engine, f"/containers/{name}/rename?name={name}", FORM, f"name={evil}".encode())
        if engine is guarded:
            assert inspect(engine, evil) is None, "renamed out of its section behind the plugin"
            assert refused_unseen(answer), answer
            stored = inspect(engine, name)
            assert stored is not None and stored["Name"] == f"/{name}"
            # compliant: a rename within the section, without a body or with an empty one
            assert post(engine, f"/containers/{name}/rename?name={name}-b")[0] == 204
            engine.names.append(f"{name}-b")
            assert post(engine, f"/containers/{name}-b/rename?name={name}", {"Content-Length": "0"})[0] == 204
            assert post(engine, f"/containers/{name}/rename?name={name}-b", {**FORM, "Content-Length": "0"}
                        )[0] == 204
        else:
            assert answer[0] == 204, answer
            stored = inspect(engine, evil)
            assert stored is not None and privileged(stored), "the control did not run the violator"


# -- F4, F4b, F5: a start or restart whose form body is held back ------------------------------

def test_a_start_cannot_hold_back_its_body_until_an_rm_container_is_gone(engines, plugin_policy):
    """F4: R is V's short id and the name of a compliant --rm container A; the start of R
    is judged on A, its body sent once A has exited and removed itself: dockerd then
    resolves R by id prefix, to V."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        _, v = violator(engine, guarded, plugin_policy)
        ref = v[:12]
        a = create(engine, ref, {**LOCKED, "AutoRemove": True}, ("sleep", "1"))
        assert post(engine, f"/containers/{a}/start")[0] == 204  # by its full id: allowed
        answer = held(engine, f"/containers/{ref}/start", b"a=b", lambda engine=engine, a=a: gone(engine, a))
        if engine is guarded:
            assert never_started(engine, v), "the violator ran behind the plugin"
            assert refused_unseen(answer), answer
        else:
            assert answer.status == 204 and not answer.early, answer
            stored = inspect(engine, v)
            assert stored is not None and privileged(stored), "the control did not run the violator"


def test_a_restart_cannot_hold_back_its_body_while_its_name_changes_hands(engines, plugin_policy):
    """F4b: restart FOO (compliant) with the body held back; meanwhile FOO is removed and
    the stopped privileged V renamed to FOO; then the body: dockerd restarts V."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        evil, v = violator(engine, guarded, plugin_policy)
        foo = unique("foo")
        create(engine, foo, LOCKED)
        meanwhile: list[tuple[int, str]] = []

        def swap(engine: Engine = engine, foo: str = foo, evil: str = evil,
                 meanwhile: list[tuple[int, str]] = meanwhile) -> None:
            meanwhile.append(engine.http.request("DELETE", f"/v1.41/containers/{foo}?force=1"))
            meanwhile.append(post(engine, f"/containers/{evil}/rename?name={foo}"))

        answer = held(engine, f"/containers/{foo}/restart", b"t=0", swap)
        if engine is guarded:
            assert never_started(engine, v), f"the violator ran behind the plugin ({meanwhile})"
            assert refused_unseen(answer), answer
        else:
            assert answer.status == 204 and not answer.early, answer
            stored = inspect(engine, v)
            assert stored is not None and stored["Name"] == f"/{foo}" and privileged(stored), \
                f"the control did not run the violator ({meanwhile})"


def test_a_start_cannot_hold_back_its_body_while_a_link_path_removes_its_container(engines, plugin_policy):
    """F5 with F4: R is V's short id and the name of a compliant A (no --rm), which another
    container links as ``kid``; ``DELETE /containers/PARENT/kid`` removes A while the start
    of R waits for its body."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        _, v = violator(engine, guarded, plugin_policy)
        ref = v[:12]
        create(engine, ref, LOCKED)
        parent = unique("par")
        create(engine, parent, {**LOCKED, "NetworkMode": "default", "Links": [f"{ref}:kid"]})
        removed: list[tuple[int, str]] = []

        def unlink(engine: Engine = engine, parent: str = parent,
                   removed: list[tuple[int, str]] = removed) -> None:
            removed.append(engine.http.request("DELETE", f"/v1.41/containers/{parent}/kid?force=1"))

        answer = held(engine, f"/containers/{ref}/start", b"a=b", unlink)
        if engine is guarded:
            assert never_started(engine, v), "the violator ran behind the plugin"
            assert refused_unseen(answer), answer
        else:
            assert removed[0][0] == 204, removed  # the link path removed A
            assert answer.status == 204 and not answer.early, answer
            stored = inspect(engine, v)
            assert stored is not None and privileged(stored), "the control did not run the violator"


@pytest.mark.parametrize("change", ["link path removal", "unnamed create"])
def test_a_change_of_what_references_name_waits_for_a_restart_in_flight(engines, plugin_policy, change):
    """F5, the gate: ``DELETE /containers/PARENT/ALIAS`` removes the linked container, and
    a create without a name adds an id a short reference may then resolve to: both are
    ordered like any removal or named create, waiting for a restart the plugin has allowed
    until dockerd has done it (else a reference the plugin judged could come to name
    another container). A busybox ``sleep`` ignores SIGTERM: ``restart?t=2`` takes 2 s;
    the control, without the gate, does not wait."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        kid, parent, web = unique("kid"), unique("par"), unique("web")
        create(engine, kid, LOCKED)
        create(engine, parent, {**LOCKED, "NetworkMode": "default", "Links": [f"{kid}:kid"]})
        create(engine, web, LOCKED)
        assert post(engine, f"/containers/{web}/start")[0] == 204
        restarted: list[float] = []

        def restart(engine: Engine = engine, web: str = web, restarted: list[float] = restarted) -> None:
            assert post(engine, f"/containers/{web}/restart?t=2")[0] == 204
            restarted.append(time.monotonic())

        t0 = time.monotonic()
        thread = threading.Thread(target=restart)
        thread.start()
        time.sleep(0.5)
        if change == "link path removal":
            status, text = engine.http.request("DELETE", f"/v1.41/containers/{parent}/kid?force=1")
            changed = time.monotonic() - t0
            assert status == 204 and inspect(engine, kid) is None, text
        else:
            body = json.dumps({"Image": IMAGE, "Cmd": ["sleep", "300"], "HostConfig": LOCKED}).encode()
            status, text = engine.http.request("POST", "/v1.41/containers/create", body, JSON)
            changed = time.monotonic() - t0
            assert status == 201, text
            engine.names.append(json.loads(text)["Id"])
        thread.join()
        assert restarted, "the restart failed"
        if engine is guarded:
            assert changed >= 1.8 and t0 + changed >= restarted[0] - 0.05, (changed, restarted[0] - t0)
        else:
            assert changed < 1.5, changed


# -- F1: an --rm container's own removal makes its hex name an id prefix ------------------------

def test_a_start_by_the_hex_name_of_an_rm_container_is_refused(engines, plugin_policy):
    """F1: a start of R, the name of a compliant --rm container A and V's short id, judged
    on A; A exits and removes itself (a removal no request makes, so no gate orders it)
    before dockerd resolves R: by id prefix, V. The guarded engine refuses a start by
    such a reference outright; the control, once A is gone, starts V."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        _, v = violator(engine, guarded, plugin_policy)
        ref = v[:12]
        a = create(engine, ref, {**LOCKED, "AutoRemove": True})
        by_ref = post(engine, f"/containers/{ref}/start")
        if engine is guarded:
            assert by_ref[0] == 403 and DENIED in by_ref[1] and "use the full id" in by_ref[1], by_ref
            assert never_started(engine, a)
        assert post(engine, f"/containers/{a}/start")[0] in (204, 304)  # by the full id: allowed
        assert post(engine, f"/containers/{a}/kill")[0] == 204
        gone(engine, a)
        after = post(engine, f"/containers/{ref}/start")  # R now resolves to V
        if engine is guarded:
            assert never_started(engine, v), "the violator ran behind the plugin"
            assert after[0] == 403 and "[CV001]" in after[1], after
        else:
            stored = inspect(engine, v)
            assert after[0] == 204 and stored is not None and privileged(stored), \
                f"the control did not run the violator ({after})"


# -- F2: a stopped container's rename (a restart in flight starts it under the new name) -------

def test_a_stopped_privileged_container_cannot_be_renamed_out_of_its_section(engines, plugin_policy):
    """F2: a restart longer than the gate holds it (``restart?t=6``) leaves a moment when its
    privileged container is stopped; a rename then was not judged, and the restart started
    it under the new name. Deterministically: the rename of a stopped privileged container
    to a name whose section forbids privileged is refused; the control starts it there."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        name = unique("priv")
        evil = name.replace("priv-", "evil-")
        engine.names.append(evil)
        create(engine, name, PRIV)
        assert post(engine, f"/containers/{name}/start")[0] == 204
        assert post(engine, f"/containers/{name}/kill")[0] == 204
        assert post(engine, f"/containers/{name}/wait?condition=not-running")[0] == 200
        answer = post(engine, f"/containers/{name}/rename?name={evil}")
        if engine is guarded:
            assert inspect(engine, evil) is None, "renamed out of its section behind the plugin"
            assert answer[0] == 403 and DENIED in answer[1] and "[CV001]" in answer[1], answer
            # compliant: within its section, a stopped privileged container may be renamed
            assert post(engine, f"/containers/{name}/rename?name={name}-b")[0] == 204
            engine.names.append(f"{name}-b")
        else:
            assert answer[0] == 204, answer
            assert post(engine, f"/containers/{evil}/start")[0] == 204
            stored = inspect(engine, evil)
            assert stored is not None and privileged(stored), "the control did not run the violator"


# -- F6: a request that holds the gate ----------------------------------------------------------

def answers_at_once(engine: Engine, target: str) -> bool:
    """POST ``target`` on a connection of its own: answered with a 204 within 5 s (a
    request waiting for the gate was refused after 30 s)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(engine.http.path))
        s.sendall(f"POST /v1.41{target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
        try:
            return s.recv(64).startswith(b"HTTP/1.1 204")
        except TimeoutError:
            return False


@pytest.mark.parametrize("held_kind", ["rename", "start", "restart"])
def test_a_request_with_a_held_body_does_not_hold_up_other_requests(engines, plugin_policy, held_kind):
    """F6: a request the gate orders, whose form body never comes, once held the gate until
    dockerd reported it done: every start (after a held rename) or rename (after any of
    them) waited 30 s and was refused. It is now refused at once, and a start and a rename
    on other connections answer at once. The control shows that dockerd itself does wait
    for such a body."""
    plugin_policy(POLICY)
    guarded = engines[0]
    for engine in engines:
        idle, victim = unique("idle"), unique("victim")
        create(engine, idle, LOCKED)
        create(engine, victim, LOCKED)
        engine.names += [f"{idle}-2", f"{victim}-2"]
        target = {"rename": f"/containers/{idle}/rename?name={idle}-2", "start": f"/containers/{idle}/start",
                  "restart": f"/containers/{idle}/restart"}[held_kind]
        others: list[bool] = []

        def meanwhile(engine: Engine = engine, victim: str = victim, others: list[bool] = others) -> None:
            others.append(answers_at_once(engine, f"/containers/{victim}/start"))
            others.append(answers_at_once(engine, f"/containers/{victim}/rename?name={victim}-2"))

        answer = held(engine, target, b"a=b", meanwhile)
        assert others == [True, True], others
        stored = inspect(engine, f"{victim}-2")
        assert stored is not None and stored["State"]["Running"]
        if engine is guarded:
            assert refused_unseen(answer), answer
        else:  # dockerd waited for the body (a plugin that allowed it held the gate that long)
            assert answer.status == 204 and not answer.early, answer


# -- what still works --------------------------------------------------------------------------

def docker_cli(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.run(["/usr/bin/docker", "-H", f"unix://{engine.http.path}", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_compliant_starts_restarts_and_renames_still_work(engines, plugin_policy):
    """Without a body, with an empty one (the docker CLI sends ``Content-Type: text/plain``
    and ``Content-Length: 0``), by full id, by name, by short id; an --rm container as
    ``docker run --rm`` starts it (by its full id)."""
    plugin_policy(POLICY)
    guarded = engines[0]
    web = unique("web")
    full = create(guarded, web, LOCKED)
    empty = {"Content-Type": "text/plain", "Content-Length": "0"}
    assert post(guarded, f"/containers/{web}/start")[0] == 204
    assert post(guarded, f"/containers/{web}/restart?t=0", {"Content-Length": "0"})[0] == 204
    assert post(guarded, f"/containers/{full[:12]}/restart?t=0", empty)[0] == 204  # not --rm: a prefix works
    assert post(guarded, f"/containers/{full}/restart?t=0", {**FORM, "Content-Length": "0"})[0] == 204
    assert post(guarded, f"/containers/{web}/rename?name={web}-b", empty)[0] == 204
    guarded.names.append(f"{web}-b")
    for args in (("restart", "-t", "0", f"{web}-b"), ("rename", f"{web}-b", web), ("kill", web),
                 ("start", web)):
        done = docker_cli(guarded, *args)
        assert done.returncode == 0, (args, done.stderr)
    # --rm, started by its name (not hex) and by its full id
    rm = unique("rm")
    rm_id = create(guarded, rm, {**LOCKED, "AutoRemove": True})
    assert post(guarded, f"/containers/{rm}/start", empty)[0] == 204
    assert post(guarded, f"/containers/{rm_id}/restart?t=0", empty)[0] == 204
    ran = docker_cli(guarded, "run", "--rm", "-d", "--network", "none", "--cap-drop", "ALL", "--security-opt",
                     "no-new-privileges", IMAGE, "sleep", "300")
    assert ran.returncode == 0, ran.stderr
    guarded.names.append(ran.stdout.strip())
    stored = inspect(guarded, ran.stdout.strip())
    assert stored is not None and stored["State"]["Running"] and stored["HostConfig"]["AutoRemove"]
    for ref in (web, rm):
        stored = inspect(guarded, ref)
        assert stored is not None and stored["State"]["Running"], ref
