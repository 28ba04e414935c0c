"""Re-record tests/data/stats.json: ``python tests/record_stats.py`` (needs root and docker.io).

Runs containers that use memory (a file in /dev/shm), CPU (a busy loop) and processes on a
private dockerd of each engine, and saves two one-shot readings of their stats a second
apart (``GET /containers/{id}/stats?stream=false&one-shot=true``, what the usage sampler
reads), so the usage unit tests read the engines' real output.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from engines import engine_binaries
from harness import IMAGE, PrivateDockerd, busybox_image

from covenant.engine import DockerEngine

CASES = {
    "shm-48m": "dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 && sleep 300",
    "busy": "while :; do :; done",
    "procs-12": "for i in 1 2 3 4 5 6 7 8 9 10 11; do sleep 300 & done; wait",
    "idle": "sleep 300",
}


def record(version: str) -> dict[str, object]:
    dockerd = PrivateDockerd(engine=engine_binaries(version))
    try:
        dockerd.start()
        client = dockerd.client()
        busybox_image(client)
        ids = {name: client.containers.run(IMAGE, ["sh", "-c", cmd], detach=True, name=name).id
               for name, cmd in CASES.items()}
        time.sleep(3)
        engine = DockerEngine(host=dockerd.host)
        readings: dict[str, list[object]] = {name: [] for name in CASES}
        for _ in range(2):
            for name, cid in ids.items():
                readings[name].append({"at": time.monotonic(), "stats": engine.stats(cid)})
            time.sleep(1)
        client.close()
        return readings
    finally:
        dockerd.stop()


def main() -> None:
    out = {f"dockerd-{v}": record(v) for v in ("20.10", "26")}
    path = Path(__file__).parent / "data" / "stats.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
