"""The usage sampler: every ``usage_interval`` seconds, read the stats of the running
containers that a usage limit applies to and act on those over a limit for longer than
their ``usage_for`` (``checks/usage.py`` judges; this module only does the I/O).

Off unless the policy sets ``usage_interval``. One round is one ``GET /containers/json``
and, for the containers whose sections set a limit, one ``one-shot`` stats request each,
up to 64 at a time. The sampler never delays the events path: it runs on its own thread
and hands a violation to the enforcer as a decision, which logs and stops as for any
other (``mode: warn`` only logs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .checks import Sample, judge_usage, limited
from .checks.usage import sample as read_sample
from .engine import DockerEngine
from .metrics import Metrics
from .policy import Decision, Policy

# dockerd 20.10 answers a one-shot stats request only at its collector's next tick (once a
# second; 23 and later at once): the requests of a round go out together, so that a round
# over up to this many containers costs one tick, not one tick per container.
WORKERS = 64
TIMEOUT = 10.0  # a stats request on a loaded engine: slower than an inspect, and off the kill path


@dataclass
class Track:
    """What the sampler remembers of one running container between rounds."""

    last: Sample | None = None
    since: dict[str, float] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # once per run above a limit
    # and once as waived: a run reported while waived is reported again when the waiver ends
    reported_waived: set[str] = field(default_factory=set)


def listed_as_container(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields of a ``/containers/json`` entry that select sections (name, image
    reference, labels), shaped as ``docker inspect`` has them."""
    names = entry.get("Names") or []
    return {"Id": entry.get("Id", ""), "Name": names[0] if names else "",
            "Config": {"Image": entry.get("Image", ""), "Labels": entry.get("Labels") or {}}}


class Sampler:
    def __init__(self, engine: DockerEngine, policy: Callable[[], Policy], act: Callable[[Decision], None],
                 log: Callable[[], logging.Logger], metrics: Metrics, own_id: str | None = None) -> None:
        self.engine = engine
        self.policy = policy  # read anew each round: a reload may change limits or the interval
        self.act = act
        self.log = log
        self.metrics = metrics
        self.own_id = own_id
        self.tracks: dict[str, Track] = {}
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="usage")

    def run(self, stopping: threading.Event) -> None:
        """Round after round while ``usage_interval`` is set; ends when it is unset."""
        while (interval := self.policy().usage_interval) and not stopping.wait(interval):
            try:
                self.round()
            except Exception as e:  # noqa: BLE001 - the next round tries again
                self.metrics.usage_rounds.labels("failed").inc()
                self.log().warning("usage round failed (%s: %s)", type(e).__name__, e)
        self.tracks.clear()

    def round(self) -> int:
        """One round; returns how many containers were sampled."""
        started = time.monotonic()
        policy = self.policy()
        chosen = []
        for entry in self.engine.listed():
            container = listed_as_container(entry)
            if container["Id"] == self.own_id:
                continue
            settings, waived = policy.resolve(container)
            if limited(settings):
                chosen.append((container, settings, waived))
        ids = {c["Id"] for c, _, _ in chosen}
        for gone in set(self.tracks) - ids:
            del self.tracks[gone]
        for (container, settings, waived), result in zip(
                chosen, self.pool.map(self._read, [c["Id"] for c, _, _ in chosen])):
            if result is not None:
                self._judge(policy, container, settings, waived, result)
        self.metrics.usage_rounds.labels("ok").inc()
        self.metrics.usage_sampled.set(len(chosen))
        self.metrics.usage_round_seconds.observe(time.monotonic() - started)
        return len(chosen)

    def _read(self, container_id: str) -> Sample | None:
        try:
            stats = self.engine.stats(container_id)
        except Exception as e:  # noqa: BLE001 - gone meanwhile, or the engine slow: next round
            self.log().debug("usage: no stats for %s (%s)", container_id[:12], e)
            return None
        return read_sample(stats, time.monotonic())

    def _judge(self, policy: Policy, container: dict[str, Any], settings: dict[str, Any],
               waived: frozenset[str], current: Sample) -> None:
        cid = str(container["Id"])
        track = self.tracks.setdefault(cid, Track())
        name = str(container["Name"]).lstrip("/")
        track.since, found = judge_usage(name, settings, track.since, track.last, current)
        track.last = current
        track.reported &= set(track.since)
        track.reported_waived &= set(track.since)
        found = tuple(v for v in found if v.check not in track.reported
                      and not (v.check in waived and v.check in track.reported_waived))
        track.reported |= {v.check for v in found if v.check not in waived}
        track.reported_waived |= {v.check for v in found if v.check in waived}
        if not found:
            return
        covering = policy.waivers_of(container)  # what the journal says of a waived finding
        decision = Decision(cid, name, str(container["Config"]["Image"]),
                            tuple(v for v in found if v.check not in waived),
                            tuple(v for v in found if v.check in waived),
                            waivers={v.check: covering[v.check] for v in found if v.check in covering})
        if decision.allowed and not decision.waived:
            return
        if not decision.allowed and policy.mode == "enforce":
            del self.tracks[cid]  # stopped: a restart starts a new run
        self.act(decision)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
