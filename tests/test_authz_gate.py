"""The gate that keeps a container reference meaning one container from the plugin's
decision to dockerd's action (pure: threads and a clock, no engine)."""

from __future__ import annotations

import threading

import pytest

from covenant.authz.gate import GateBusyError, NameGate, gate_class
from covenant.authz.route import route


@pytest.mark.parametrize(("method", "uri", "cls"), [
    ("POST", "/v1.41/containers/web/start", "resolve"),
    ("POST", "/containers/web/restart?t=3", "resolve"),
    ("POST", "/v1.41.0/containers/web/update", "resolve"),
    ("POST", "/v1.41/containers/web/rename?name=x", "exclusive"),
    ("POST", "/v1.41/containers/create?name=web", "change"),
    ("DELETE", "/v1.41/containers/web?force=1", "change"),
    ("POST", "/v1.41/containers/prune", "change"),
    ("POST", "/v1.41/containers/create", "change"),  # a new id a short prefix may then name
    ("DELETE", "/v1.41/containers/parent/alias", "change"),  # a link: dockerd routes {name:.*}
    ("DELETE", "/v1.41/containers/x/start", "change"),
    ("GET", "/v1.41/containers/web/json", None),
    ("POST", "/v1.41/exec/abc/start", None),  # an exec id is never reused
    ("POST", "/v1.41/containers/web/exec", "exec"),  # ordered against renames only
])
def test_requests_are_classed_by_what_they_do_to_references(method, uri, cls):
    assert gate_class(method, route(uri)) == cls


def enter_later(gate: NameGate, cls: str, key: tuple[str, str]) -> tuple[threading.Thread, list]:
    """Enter from another thread; the list gets the ticket, or the error."""
    out: list = []

    def run() -> None:
        try:
            out.append(gate.enter(cls, key))
        except GateBusyError as e:
            out.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


START, RENAME, CREATE = ("POST", "/start"), ("POST", "/rename"), ("POST", "/create")


def test_a_change_waits_for_starts_in_flight_and_starts_share():
    gate = NameGate(wait=10)
    gate.enter("resolve", START)
    gate.enter("resolve", START)  # two starts at once
    thread, out = enter_later(gate, "change", CREATE)
    thread.join(0.2)
    assert thread.is_alive() and not out  # held while the starts are in flight
    gate.leave(START)
    thread.join(0.2)
    assert thread.is_alive()
    gate.leave(START)  # dockerd reported both done
    thread.join(5)
    assert out and not isinstance(out[0], Exception)
    assert gate.holders() == 1


def test_a_start_waits_for_a_rename_and_renames_run_alone():
    gate = NameGate(wait=10)
    gate.enter("exclusive", RENAME)
    thread, out = enter_later(gate, "exclusive", RENAME)
    thread.join(0.2)
    assert not out
    start, started = enter_later(gate, "resolve", START)
    gate.leave(RENAME)
    thread.join(5)
    assert out and gate.holders() == 1
    start.join(0.2)
    assert not started  # behind the second rename
    gate.leave(RENAME)
    start.join(5)
    assert started and not isinstance(started[0], Exception)


def test_waiting_is_in_arrival_order():
    """A start arriving behind a waiting create does not overtake it (no starvation)."""
    gate = NameGate(wait=10)
    gate.enter("resolve", START)
    create, created = enter_later(gate, "change", CREATE)
    create.join(0.2)
    late, late_out = enter_later(gate, "resolve", START)
    late.join(0.2)
    assert not created and not late_out
    gate.leave(START)
    create.join(5)
    late.join(0.2)
    assert created and not late_out
    gate.leave(CREATE)
    late.join(5)
    assert late_out


def test_waiting_too_long_is_an_error_and_refusals_free_the_gate():
    gate = NameGate(wait=0.2)
    ticket = gate.enter("resolve", START)
    with pytest.raises(GateBusyError):
        gate.enter("change", CREATE)
    gate.cancel(ticket)  # refused: dockerd sends no AuthZRes for it
    gate.enter("change", CREATE)


def test_a_holder_whose_answer_never_comes_expires():
    now = [0.0]
    gate = NameGate(wait=1000, ttl=60, clock=lambda: now[0])
    gate.enter("resolve", START)
    thread, out = enter_later(gate, "change", CREATE)
    thread.join(0.2)
    assert not out
    now[0] = 61.0
    thread.join(5)  # wakes at least once a second to expire stale holders
    assert out and not isinstance(out[0], Exception)


def test_exec_creates_wait_for_renames_only():
    gate = NameGate(wait=10)
    gate.enter("resolve", START)
    gate.enter("exec", ("POST", "/exec"))  # beside starts
    gate.leave(START)
    gate.enter("change", CREATE)  # and beside named creates
    gate.leave(CREATE)
    thread, out = enter_later(gate, "exclusive", RENAME)
    thread.join(0.2)
    assert not out  # the rename waits for the exec create
    gate.leave(("POST", "/exec"))
    thread.join(5)
    assert out and not isinstance(out[0], Exception)


def test_a_restart_holds_the_gate_briefly():
    """dockerd resolves a restart's reference first, then waits for the stop: a long
    stop timeout must not keep everyone else out."""
    now = [0.0]
    gate = NameGate(wait=1000, ttl=120, clock=lambda: now[0])
    gate.enter("resolve", ("POST", "/restart"), hold=5)
    thread, out = enter_later(gate, "change", CREATE)
    thread.join(0.2)
    assert not out
    now[0] = 5.5
    thread.join(5)
    assert out and not isinstance(out[0], Exception)


class NoEngine:
    """The plugin never needs to ask dockerd for these requests."""

    def __getattr__(self, name: str):
        raise AssertionError(f"unexpected lookup: {name}")


@pytest.mark.parametrize(("method", "uri"), [
    ("POST", "/v1.41/containers/prune"), ("POST", "/v1.41/containers/create?name=x"),
    ("DELETE", "/v1.41/containers/x"), ("POST", "/v1.41/containers/x/exec"),
    ("POST", "/v1.41/containers/x/start"), ("POST", "/v1.41/containers/x/rename?name=y")])
def test_a_request_the_gate_would_hold_while_its_body_arrives_is_refused(method, uri):
    """dockerd reads a body it did not send the plugin after the plugin answers, for as
    long as the client takes: an ordered request must not hold every start meanwhile."""
    import logging

    from covenant.authz import AuthzPlugin
    from covenant.policy import parse_policy

    log = logging.getLogger("test-gate")
    plugin = AuthzPlugin(parse_policy("debug: no\n"), log, "/nonexistent.sock", NoEngine())
    held = {"RequestMethod": method, "RequestUri": uri,
            "RequestHeaders": {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "100"}}
    reply = plugin.answer(held)
    assert not reply["Allow"] and "not sent" in reply["Msg"], reply
    assert plugin.gate.holders() == 0
