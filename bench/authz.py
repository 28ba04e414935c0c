"""What the authorization plugin adds to `docker ps`, `docker create`, `docker run`
(create + start: the start is judged on dockerd's inspect) and `docker exec` (exec
create + start: the start is judged on the exec's inspect).

    python bench/authz.py [--n 300]

One private dockerd, measured without the plugin and then restarted (same data root)
with ``--authorization-plugin`` pointing at docker-covenant; the API calls are made with
docker-py, as the CLI would make them, and timed end to end. Prints p50/p99 and the
difference. Targets at p50: ps +1 ms, create +2 ms, run +3 ms, exec +3 ms at most.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
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
TARGETS = {"docker ps": 1.0, "docker create": 2.0, "docker run": 3.0, "docker exec": 3.0}  # ms added at p50


def timed(call: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def measure(dockerd: PrivateDockerd, n: int) -> dict[str, list[float]]:
    client = dockerd.client()
    api = client.api
    busybox_image(client)
    created: list[str] = []

    def create() -> None:
        created.append(api.create_container(IMAGE, ["true"], host_config=api.create_host_config(
            network_mode="none", cap_drop=COMPLIANT["cap_drop"],
            security_opt=COMPLIANT["security_opt"]))["Id"])

    def run() -> None:
        create()
        api.start(created[-1])

    target = api.create_container(IMAGE, ["sleep", "3600"], host_config=api.create_host_config(
        network_mode="none", cap_drop=COMPLIANT["cap_drop"], security_opt=COMPLIANT["security_opt"]))["Id"]
    created.append(target)
    api.start(target)

    def exec_() -> None:
        api.exec_start(api.exec_create(target, ["true"])["Id"])

    for call in (api.containers, create, run, exec_):
        timed(call, 20)  # warm up connections and caches
    result = {"docker ps": timed(api.containers, n), "docker create": timed(create, n),
              "docker run": timed(run, n), "docker exec": timed(exec_, n)}
    for cid in created:
        api.remove_container(cid, force=True)
    client.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="round trips per measurement (default 300)")
    n = ap.parse_args().n
    journal = JournalBed()
    journal.start()
    work = Path(tempfile.mkdtemp(prefix="covbench-authz-"))
    plugin_dir = work / "plugins"
    plugin_dir.mkdir()
    dockerd = PrivateDockerd(wrap=private_plugin_dir_wrapper(plugin_dir))
    plugin = Covenant(work, dockerd.host, "debug: no\n")
    plugin.argv += ["authz", "--name", PLUGIN, "--socket-dir", str(plugin_dir)]
    without: dict[str, list[float]] = {}
    with_plugin: dict[str, list[float]] = {}
    try:
        plugin.start()
        # Alternate, so that neither condition gets the cold (or the warm) engine.
        for plugged in (False, True, False, True):
            dockerd.extra_args = (f"--authorization-plugin={PLUGIN}",) if plugged else ()
            dockerd.start()
            for what, samples in measure(dockerd, n).items():
                (with_plugin if plugged else without).setdefault(what, []).extend(samples)
            dockerd.kill(signal.SIGTERM)
    finally:
        dockerd.stop()
        plugin.close()
        journal.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{2 * n} round trips each, same dockerd restarted without/with/without/with the plugin\n")
    print("| request | p50 without | p50 with | added at p50 | p99 without | p99 with |")
    print("|---|---|---|---|---|---|")
    for what, a in without.items():
        b = with_plugin[what]
        added, target = statistics.median(b) - statistics.median(a), TARGETS[what]
        verdict = "met" if added <= target else "MISSED"
        print(f"| {what} | {statistics.median(a):.2f} ms | {statistics.median(b):.2f} ms | {added:+.2f} ms"
              f" (target <= {target:g} ms: {verdict}) | {pct(a, .99):.2f} ms | {pct(b, .99):.2f} ms |")


if __name__ == "__main__":
    main()
