"""Waivers that end: the daemon's timer to the next end, the warning for one already
ended, and the metrics an alert reads. The core (``Policy.decide``) judges a waiver at the
time it is given; this is the shell that knows what time it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from .logs import fields
from .policy import Policy, Waiver, utc

LONGEST_WAIT = 60.0  # seconds the timer sleeps at most: the wall clock may be stepped meanwhile
RETRY_WAIT = 2.0  # seconds before a re-evaluation that failed (the engine did not answer) is tried again
SOON = 7 * 86400  # covenant_waivers_expiring{within="7d"}


def expiry_timer(policy: Callable[[], Policy], rearm: threading.Event, stopping: threading.Event,
                 on_expiry: Callable[[list[Waiver]], None], log: Callable[[], logging.Logger],
                 clock: Callable[[], float] = time.time, longest: float = LONGEST_WAIT,
                 retry: float = RETRY_WAIT) -> None:
    """Sleep until the next waiver of the current policy ends, then hand on the waivers that
    ended since the last look. ``rearm`` (set on reload) makes it look at the policy again.
    A hand-on that fails (the engine's list of running containers failed) is made again
    ``retry`` seconds later, then twice as long each time (at most ``longest``), until it
    succeeds: the containers left running under the waiver are judged again at its end only
    (reconciliation skips those judged since their start), so a lost one left them running
    for good."""
    last = clock()
    delay = retry
    while not stopping.is_set():
        now = clock()
        ended = [w for w in policy().waivers() if w.expires is not None and last < w.expires <= now]
        failed = False
        if ended:
            try:
                on_expiry(ended)
            except Exception:  # noqa: BLE001 - tried again; the next end must still be seen
                log().exception("re-evaluation after a waiver expired failed; trying again in %g s", delay)
                failed = True
        if not failed:
            last, delay = now, retry
        following = policy().next_expiry(now)
        wait = longest if following is None else min(longest, max(0.0, following - now))
        if failed:
            wait, delay = min(wait, delay), min(longest, delay * 2)
        if rearm.wait(wait):
            rearm.clear()


def log_ended(log: logging.Logger, waivers: list[Waiver], now: float, sweeping: bool = False) -> None:
    """One warning per waiver that has ended: at load (it stays in the file and no longer
    applies), or while running, the moment it ended (``sweeping``: the running containers
    are judged again)."""
    for w in waivers:
        checks = ",".join(sorted(w.checks))
        log.warning("%s: waiver of %s expired at %s (%s); %s", w.section, checks, utc(w.expires or now),
                    w.note(), "re-evaluating running containers" if sweeping else "it no longer applies",
                    extra=fields(**w.fields(), COVENANT_CHECK=checks, COVENANT_ACTION="waiver-expired"))


class WaiverCollector:
    """``covenant_waiver_expiry_timestamp_seconds`` per dated waiver of the current policy
    (labelled with its ``until`` too: a renewal written beside the ended waiver it replaces
    is a series of its own, not hidden behind the earlier end), and how many end within a
    week or have ended, computed at each scrape."""

    def __init__(self, policy: Callable[[], Policy], clock: Callable[[], float] = time.time) -> None:
        self.policy, self.clock = policy, clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        dated = [w for w in self.policy().waivers() if w.expires is not None]
        ends = GaugeMetricFamily("covenant_waiver_expiry_timestamp_seconds",
                                 "When each dated waiver of the policy ends (seconds since the epoch); "
                                 "ended ones stay until removed from the file",
                                 labels=["section", "checks", "ticket", "owner", "until"])
        seen: dict[tuple[str, str, str, str, str], float] = {}
        for w in dated:  # the same until: the same end
            seen[(w.section, ",".join(sorted(w.checks)), w.ticket, w.owner, w.until)] = w.expires or 0
        for key, value in seen.items():
            ends.add_metric(list(key), value)
        yield ends
        expiring = GaugeMetricFamily("covenant_waivers_expiring", "Waivers of the policy that end within "
                                     "the given time from now", labels=["within"])
        expiring.add_metric(["7d"], sum(1 for w in dated if now < (w.expires or 0) <= now + SOON))
        yield expiring
        yield GaugeMetricFamily("covenant_waivers_expired", "Waivers of the policy that have ended (they "
                                "no longer apply; remove or renew them)",
                                value=sum(1 for w in dated if (w.expires or 0) <= now))
