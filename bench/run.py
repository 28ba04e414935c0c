"""docker-covenant benchmarks, against a private dockerd and a real journal.

    python bench/run.py            # the full suite (about 10 minutes)
    python bench/run.py --quick    # fewer containers, shorter idle window

Run as root on a machine set up as for the tests (README.adoc, Testing). Every time is
taken from dockerd's own event timestamps, or from the journal's, never from this
script's clock while it is busy. Prints a table; ratios compare runs made in this one
invocation, on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    wait_until,
)

ROWS: list[tuple[str, str, str, str]] = []
# docker-covenant leaves the bare script's violators to it while both run side by side
BASE_EXEMPT = "'base-*':\n  privileged: yes\n  cap_drop_required: no\n  security_opt_required: no\n"


def row(metric: str, value: str, target: str = "", verdict: str = "") -> None:
    ROWS.append((metric, value, target, verdict))
    print(f"  {metric}: {value}" + (f"  (target {target}: {verdict})" if target else ""), flush=True)


class Observer:
    """Records dockerd's own start/die timestamps (ns) per container id."""

    def __init__(self, api: Any) -> None:
        self.start: dict[str, int] = {}
        self.die: dict[str, int] = {}
        self.stream = api.events(decode=True, filters={"type": "container", "event": ["start", "die"]})
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for ev in self.stream:
            target = self.start if ev.get("Action") == "start" else self.die
            target.setdefault(ev["Actor"]["ID"], int(ev["timeNano"]))

    def close(self) -> None:
        self.stream.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(host: str, prefix: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "baseline.py"), prefix],
                            env={**os.environ, "DOCKER_HOST": host}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def create(client: Any, names: list[str], options: dict[str, Any]) -> list[Any]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda n: client.containers.create(
            IMAGE, ["sleep", "3000"], name=n, network_mode="none", **options), names))


def remove_all(client: Any) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: c.remove(force=True), client.containers.list(all=True)))


def exposure(client: Any, observer: Observer, n: int) -> tuple[list[float], list[float]]:
    """n violators for each enforcer, started one at a time, alternating between the bare
    script's (``base-exp-*``) and docker-covenant's (``cov-exp-*``), both enforcers
    running: each pair sees the same moments of the machine. The window of each is its
    start event -> its die event. Returns (bare script's windows, docker-covenant's)."""
    windows: tuple[list[float], list[float]] = ([], [])
    base = create(client, [f"base-exp-{i}" for i in range(n)], {})
    cov = create(client, [f"cov-exp-{i}" for i in range(n)], {})
    for i, pair in enumerate(zip(base, cov, strict=True)):
        for side in ((0, 1) if i % 2 else (1, 0)):
            c = pair[side]
            c.start()
            wait_until(lambda c=c: c.id in observer.die, 30, 0.005, f"{c.name} to die")
            windows[side].append((observer.die[c.id] - observer.start[c.id]) / 1e6)
    return windows


def burst(client: Any, observer: Observer, prefix: str, n: int) -> tuple[float, int, int]:
    """n violators and n compliant ones, created first, then started all at once.
    Returns (ms from first start to last violator's death, missed, compliant touched)."""
    bad = create(client, [f"{prefix}-bad-{i}" for i in range(n)], {})
    good = create(client, [f"ok-{prefix}-{i}" for i in range(n)], COMPLIANT)
    mixed = [c for pair in zip(bad, good) for c in pair]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda c: c.start(), mixed))
    with contextlib.suppress(TimeoutError):  # counted as missed below
        wait_until(lambda: all(c.id in observer.die for c in bad), 120, 0.05, "all violators to die")
    missed = sum(1 for c in bad if c.id not in observer.die)
    touched = sum(1 for c in good if c.id in observer.die)
    first = min(observer.start[c.id] for c in mixed)
    last = max(observer.die.get(c.id, 0) for c in bad)
    return (last - first) / 1e6, missed, touched


def run_exposure_and_burst(dockerd: PrivateDockerd, client: Any, work: Path, n: int, burst_n: int) -> int:
    observer = Observer(client.api)
    print(f"exposure window: {n} violators each, the bare script's and docker-covenant's alternated",
          flush=True)
    base = baseline(dockerd.host, "base-")
    cov = Covenant(work, dockerd.host, "debug: no\n" + BASE_EXEMPT).start()
    assert cov.proc is not None
    idle_rss = rss_kb(cov.proc.pid)
    base_w, cov_w = exposure(client, observer, n)
    remove_all(client)
    cov.close()
    base_burst = burst(client, observer, "base-burst", burst_n)
    base.terminate()
    base.wait()
    remove_all(client)

    cov = Covenant(work, dockerd.host, "debug: no\n").start()
    cov_burst = burst(client, observer, "cov-burst", burst_n)
    cov.close()
    remove_all(client)
    observer.close()

    b50, c50, c99 = statistics.median(base_w), statistics.median(cov_w), pct(cov_w, 0.99)
    row("exposure p50, bare kill-on-start script", f"{b50:.1f} ms (p99 {pct(base_w, 0.99):.1f} ms)")
    row("exposure p50, docker-covenant", f"{c50:.1f} ms ({c50 / b50:.2f}x baseline)", "<= 1.05x",
        "met" if c50 <= 1.05 * b50 else "MISSED")
    row("exposure p99, docker-covenant", f"{c99:.1f} ms", "<= 100 ms", "met" if c99 <= 100 else "MISSED")
    bt, bm, bg = base_burst
    ct, cm, cg = cov_burst
    row(f"burst {burst_n}+{burst_n}, bare script", f"{bt:.0f} ms until the last violator died "
        f"({bm} missed, {bg} compliant touched)")
    row(f"burst {burst_n}+{burst_n}, docker-covenant", f"{ct:.0f} ms ({ct / bt:.2f}x baseline)", "<= 1.5x",
        "met" if ct <= 1.5 * bt else "MISSED")
    row("burst: violators missed / compliant touched", f"{cm} / {cg}", "0 / 0",
        "met" if cm == 0 and cg == 0 else "MISSED")
    return idle_rss


def run_large_host(dockerd: PrivateDockerd, client: Any, journal: JournalBed, work: Path,
                   n: int, evaluations: int) -> None:
    print(f"large host: {n} running containers", flush=True)
    containers = create(client, [f"host-{i}" for i in range(n)], COMPLIANT)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: c.start(), containers))
    started = time.monotonic()
    for c in containers:
        client.api.inspect_container(c.id)
    inspect_s = time.monotonic() - started
    cov = Covenant(work, dockerd.host, "debug: no\nreaudit_interval: 1\n").start()
    assert cov.proc is not None

    def allowed() -> list[dict[str, Any]]:
        return journal.entries(cov.ident, COVENANT_ACTION="allowed")

    first = wait_until(lambda: len(allowed()) >= n and allowed(), 120, 0.2, "the sweep")
    following = next(e for e in journal.entries(cov.ident) if "following Docker events" in e["MESSAGE"])
    t0 = int(following["__REALTIME_TIMESTAMP"])
    sweep_s = (sorted(int(e["__REALTIME_TIMESTAMP"]) for e in first)[n - 1] - t0) / 1e6
    rss_sweep = rss_kb(cov.proc.pid)
    row(f"sweep of {n} running containers", f"{sweep_s * 1000:.0f} ms "
        f"({sweep_s / inspect_s:.2f}x a sequential inspect of all, {inspect_s * 1000:.0f} ms)",
        "<= 1.0x", "met" if sweep_s <= inspect_s else "MISSED")
    rounds = []
    for _ in range(20):  # what each reconciliation round costs once all are judged: one list call
        t = time.monotonic()
        client.api.containers(quiet=True)
        rounds.append((time.monotonic() - t) * 1000)
    row(f"reconciliation round over {n} running containers, all judged",
        f"{statistics.median(rounds):.1f} ms (one list call, nothing inspected; every 5 s by default)")
    wait_until(lambda: len(allowed()) >= evaluations, 1800, 1.0, f"{evaluations} evaluations")
    rss_after = rss_kb(cov.proc.pid)
    row("RSS after the sweep", f"{rss_sweep / 1024:.1f} MB")
    row(f"RSS after {evaluations} evaluations", f"{rss_after / 1024:.1f} MB "
        f"({(rss_after - rss_sweep) / 1024:+.1f} MB)", "flat", "met" if rss_after - rss_sweep < 5 * 1024
        else "MISSED")
    cov.close()
    remove_all(client)


def run_idle(dockerd: PrivateDockerd, work: Path, seconds: float, idle_rss: int) -> None:
    cov = Covenant(work, dockerd.host, "debug: no\n").start()
    assert cov.proc is not None
    time.sleep(1)
    before = cpu_seconds(cov.proc.pid)
    time.sleep(seconds)
    used = cpu_seconds(cov.proc.pid) - before
    row("idle RSS (connected, no containers)", f"{idle_rss / 1024:.1f} MB", "<= 60 MB",
        "met" if idle_rss <= 60 * 1024 else "MISSED")
    row(f"CPU used idle over {seconds:.0f} s", f"{used * 1000:.0f} ms", "~0",
        "met" if used < 0.05 else "MISSED")
    cov.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="20 violators, burst of 50, 100 containers, 10 s idle")
    args = ap.parse_args()
    n, burst_n, host_n, evals, idle = (20, 50, 100, 1000, 10) if args.quick else (60, 200, 500, 10000, 60)
    journal = JournalBed()
    journal.start()
    dockerd = PrivateDockerd()
    try:
        dockerd.start()
        client = dockerd.client()
        busybox_image(client)
        with tempfile.TemporaryDirectory(prefix="covbench-") as work:
            idle_rss = run_exposure_and_burst(dockerd, client, Path(work), n, burst_n)
            run_large_host(dockerd, client, journal, Path(work), host_n, evals)
            run_idle(dockerd, Path(work), idle, idle_rss)
        client.close()
    finally:
        dockerd.stop()
        journal.stop()
    print("\n| metric | value | target | verdict |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
