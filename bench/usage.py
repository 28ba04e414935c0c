"""What one usage round costs: ``GET /containers/json`` and a one-shot stats request for
each running container a usage limit applies to, judged (the sampler of usage_interval).

    python bench/usage.py [--containers 100] [--rounds 20]

Starts a private dockerd with that many idle busybox containers, all under a section
with a memory, CPU and PIDs limit, and runs the daemon's own sampler (covenant/sampler.py,
64 requests at a time) round after round, on dockerd 20.10 or 26 (``--engine``). Prints
the round's p50 and p95 wall time, the time per container, and the CPU time the process
spent per round.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from engines import engine_binaries  # noqa: E402
from harness import COMPLIANT, IMAGE, PrivateDockerd, busybox_image  # noqa: E402

from covenant.engine import DockerEngine  # noqa: E402
from covenant.metrics import Metrics  # noqa: E402
from covenant.policy import parse_policy  # noqa: E402
from covenant.sampler import WORKERS as SAMPLER_WORKERS  # noqa: E402
from covenant.sampler import Sampler  # noqa: E402

POLICY = "usage_interval: 10\n'*':\n  memory_usage_max: 1GiB\n  cpu_usage_max: 2\n  pids_usage_max: 500\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--engine", choices=("20.10", "26"), default="20.10")
    args = ap.parse_args()
    dockerd = PrivateDockerd(engine=engine_binaries(args.engine))
    try:
        dockerd.start()
        client = dockerd.client()
        busybox_image(client)
        for _ in range(args.containers):
            client.containers.run(IMAGE, ["sleep", "3600"], detach=True, network_mode="none", **COMPLIANT)
        policy = parse_policy(POLICY)
        acted: list[str] = []
        sampler = Sampler(DockerEngine(host=dockerd.host, pool=SAMPLER_WORKERS), lambda: policy,
                          lambda d: acted.append(d.name), lambda: logging.getLogger("bench"), Metrics())
        sampler.round()  # warm: connections, first readings
        walls, cpus = [], []
        for _ in range(args.rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            sampled = sampler.round()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        sampler.close()
        assert sampled == args.containers and not acted, (sampled, acted)
        walls.sort()
        p50, p95 = statistics.median(walls), walls[int(0.95 * (len(walls) - 1))]
        print(f"dockerd {args.engine}: usage round over {args.containers} running containers, "
              f"{args.rounds} rounds, "
              f"{threading.active_count()} threads:")
        print(f"  wall p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
              f"({p50 * 1000 / args.containers:.2f} ms a container at p50)")
        print(f"  CPU of docker-covenant per round p50 {statistics.median(cpus) * 1000:.0f} ms")
        client.close()
    finally:
        dockerd.stop()


if __name__ == "__main__":
    main()
