"""The events reader's bookkeeping, fed with events shaped as dockerd sends them."""

import logging

from covenant.events import Watcher


def start_event(cid: str, nano: int) -> dict:
    return {"Type": "container", "Action": "start", "Actor": {"ID": cid, "Attributes": {"name": cid}},
            "id": cid, "status": "start", "time": nano // 10**9, "timeNano": nano}


def test_out_of_order_starts_are_all_handed_on_and_replays_are_not():
    """Concurrent starts reach the stream slightly out of timestamp order (seen with 1,000
    parallel starts); a resume replays events already seen."""
    seen: list[str] = []
    w = Watcher(None, seen.append, logging.getLogger("test"))
    base = 1_700_000_000 * 10**9
    events = [start_event("a", base + 300), start_event("b", base + 100), start_event("c", base + 200),
              start_event("c", base + 200), start_event("a", base + 300)]
    for e in events:
        w._event(e)
    assert seen == ["a", "b", "c"]
    assert w._since == f"{(base + 300 - 2 * 10**9) // 10**9}.{(base + 300) % 10**9:09d}"
    w._event(start_event("a", base + 10**9))  # the same container started again later
    assert seen == ["a", "b", "c", "a"]


def test_only_container_start_events_count():
    seen: list[str] = []
    w = Watcher(None, seen.append, logging.getLogger("test"))
    w._event({"Type": "container", "Action": "exec_start: sh", "Actor": {"ID": "x"}, "timeNano": 1})
    w._event({"Type": "network", "Action": "start", "Actor": {"ID": "y"}, "timeNano": 2})
    w._event({"status": "start", "id": "z", "timeNano": 3})  # legacy fields only: not relied on
    assert seen == []


def test_each_kind_of_event_goes_to_its_handler():
    starts: list[str] = []
    changes: list[str] = []
    creates: list[str] = []
    destroys: list[str] = []
    w = Watcher(None, starts.append, logging.getLogger("test"), on_change=changes.append,
                on_create=creates.append, on_destroy=destroys.append)
    for i, action in enumerate(("rename", "update", "start", "die", "create", "destroy", "kill")):
        w._event({**start_event(action, 10 + i), "Action": action, "status": action})
    assert starts == ["start"] and changes == ["rename", "update"]
    assert creates == ["create"] and destroys == ["destroy"]
