"""What the authorization plugin adds to `docker ps`, `docker create`, `docker run`
(create + start: the start is judged on dockerd's inspect) and `docker exec` (exec
create + start: the start is judged on the exec's inspect).

    python bench/authz.py [--n 300] [--policy FILE]

Two private dockerds run side by side, identical but for ``--authorization-plugin``
pointing at docker-covenant on one of them. Each request is made on both in turn, in
alternating order, with docker-py as the CLI would make it, and timed end to end: both
engines see the same moment of a busy machine, so the difference is the plugin's, not
the noise's. Prints p50/p99 of each, the difference of the medians and the median of the
paired differences. Targets at p50: ps +1 ms, create +2 ms, run +3 ms, exec +3 ms at most.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from harness import (  # noqa: E402
    COMPLIANT,
    IMAGE,
    Covenant,
    JournalBed,
    PrivateDockerd,
    busybox_image,
    private_plugin_dir_wrapper,
)
from run import pct  # noqa: E402

PLUGIN = "covbench"
# ms added at p50 (the inspect and the start of a running container have none: they explain the others)
TARGETS = {"docker ps": 1.0, "docker create": 2.0, "docker run": 3.0, "docker exec": 3.0}


class Calls:
    """The four requests against one engine; every container made is removed at the end."""

    def __init__(self, dockerd: PrivateDockerd) -> None:
        self.client = dockerd.client()
        self.api = self.client.api
        busybox_image(self.client)
        self.created: list[str] = []
        self.target = self.api.create_container(IMAGE, ["sleep", "3600"], host_config=self._host())["Id"]
        self.created.append(self.target)
        self.api.start(self.target)

    def _host(self) -> Any:
        return self.api.create_host_config(network_mode="none", cap_drop=COMPLIANT["cap_drop"],
                                           security_opt=COMPLIANT["security_opt"])

    def ps(self) -> None:
        self.api.containers()

    def create(self) -> None:
        self.created.append(self.api.create_container(IMAGE, ["true"], host_config=self._host())["Id"])

    def run(self) -> None:
        self.create()
        self.api.start(self.created[-1])

    def exec(self) -> None:
        self.api.exec_start(self.api.exec_create(self.target, ["true"])["Id"])

    def inspect(self) -> None:
        self.api.inspect_container(self.target)

    def start_running(self) -> None:
        """A start of a running container: dockerd answers 304 at once, after the plugin
        judged it (its inspect included), so runc's time does not drown the plugin's."""
        self.api.start(self.target)

    def by_name(self) -> dict[str, Callable[[], None]]:
        return {"docker ps": self.ps, "docker inspect": self.inspect, "docker create": self.create,
                "docker start (running)": self.start_running, "docker run": self.run,
                "docker exec": self.exec}

    def close(self) -> None:
        for cid in self.created:
            self.api.remove_container(cid, force=True)
        self.client.close()


def timed(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure(plain: Calls, guarded: Calls, n: int,
            only: list[str]) -> dict[str, tuple[list[float], list[float]]]:
    """name -> (times without, times with), made pairwise in alternating order."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for what, call in plain.by_name().items():
        if only and what not in only:
            continue
        other = guarded.by_name()[what]
        for _ in range(20):  # warm up connections and caches
            call()
            other()
        without, with_plugin = [], []
        for i in range(n):
            if i % 2:
                with_plugin.append(timed(other))
                without.append(timed(call))
            else:
                without.append(timed(call))
                with_plugin.append(timed(other))
        out[what] = (without, with_plugin)
    return out


def interval(a: list[float], b: list[float], rounds: int = 2000) -> tuple[float, float]:
    """A bootstrap 95 % interval of the difference of the medians: ``docker run`` spreads
    over tens of ms (runc), so its p50 difference is known only this well from n pairs."""
    rng = random.Random(1)
    diffs = sorted(statistics.median(rng.choices(b, k=len(b))) - statistics.median(rng.choices(a, k=len(a)))
                   for _ in range(rounds))
    return diffs[int(rounds * 0.025)], diffs[int(rounds * 0.975)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="request pairs per measurement (default 300)")
    ap.add_argument("--only", action="append", default=[], metavar="REQUEST",
                    help='measure only this request ("docker run"); repeatable')
    ap.add_argument("--policy", metavar="FILE",
                    help="the plugin's policy (default: 'debug: no' alone), e.g. with api_rules or quotas")
    args = ap.parse_args()
    n, only = args.n, args.only
    policy = Path(args.policy).read_text() if args.policy else "debug: no\n"
    journal = JournalBed()
    journal.start()
    work = Path(tempfile.mkdtemp(prefix="covbench-authz-"))
    plugin_dir = work / "plugins"
    plugin_dir.mkdir()
    plain_d = PrivateDockerd(wrap=private_plugin_dir_wrapper(work / "plugins-none"))
    (work / "plugins-none").mkdir()
    guarded_d = PrivateDockerd(extra_args=(f"--authorization-plugin={PLUGIN}",),
                               wrap=private_plugin_dir_wrapper(plugin_dir))
    plugin = Covenant(work, guarded_d.host, policy)
    plugin.argv += ["authz", "--name", PLUGIN, "--socket-dir", str(plugin_dir)]
    calls: list[Calls] = []
    try:
        plugin.start()
        plain_d.start()
        guarded_d.start()
        calls = [Calls(plain_d), Calls(guarded_d)]
        results = measure(calls[0], calls[1], n, only)
    finally:
        for c in calls:
            c.close()
        plain_d.stop()
        guarded_d.stop()
        plugin.close()
        journal.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{n} pairs each: two identical dockerds, one with the plugin, requests alternated\n")
    print("| request | p50 without | p50 with | added at p50 (95 % interval) | paired p50 | p99 without "
          "| p99 with |")
    print("|---|---|---|---|---|---|---|")
    for what, (a, b) in results.items():
        added = statistics.median(b) - statistics.median(a)
        low, high = interval(a, b)
        paired = statistics.median(y - x for x, y in zip(a, b, strict=True))
        target = TARGETS.get(what)
        met = "met" if target is not None and added <= target else "MISSED"
        verdict = "" if target is None else f" (target <= {target:g} ms: {met})"
        print(f"| {what} | {statistics.median(a):.2f} ms | {statistics.median(b):.2f} ms | {added:+.2f} ms "
              f"({low:+.2f} to {high:+.2f}){verdict} | {paired:+.2f} ms | {pct(a, .99):.2f} ms "
              f"| {pct(b, .99):.2f} ms |")


if __name__ == "__main__":
    main()
