"""Re-record tests/data/host.json: ``python tests/record_host.py`` (needs root and docker.io).

For each engine of the suite, what ``GET /info`` and ``GET /networks/bridge`` answer on a
private dockerd as the suite starts it (``--bridge=none``, unix socket only), hardened,
loose and with TLS but no client verification (``hostbed.py``), and what ``docker image
inspect`` says of images with and without USER and HEALTHCHECK: the pure unit tests of the
daemon and image checks read the engines' real answers, not JSON written by hand.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from engines import ENGINES, engine_binaries
from harness import IMAGE, PrivateDockerd, busybox_image
from hostbed import IMAGES, build_image, hardened, loose, tls_without_verify


def answers(daemon: PrivateDockerd) -> dict[str, Any]:
    client = daemon.client()
    try:
        info = client.api.info()
        try:
            bridge = client.api.inspect_network("bridge")
        except Exception:  # noqa: BLE001 - --bridge=none: no default bridge
            bridge = None
        return {"info": info, "bridge": bridge}
    finally:
        client.close()


def record(version: str) -> dict[str, Any]:
    engine = engine_binaries(version)
    out: dict[str, Any] = {"daemons": {}, "images": {}}
    work = Path(tempfile.mkdtemp(prefix="covrec-"))
    try:
        plain = PrivateDockerd(engine=engine)
        try:
            plain.start()
            out["daemons"]["default"] = answers(plain)
            client = plain.client()
            busybox_image(client)
            for name, lines in IMAGES.items():
                tag = IMAGE if lines is None else build_image(client, f"covtest/{name}:1", lines)
                out["images"][name] = client.api.inspect_image(tag)
            client.close()
        finally:
            plain.stop()
        daemon, plugin = hardened(work / "hardened", engine)
        try:
            daemon.start(timeout=90)
            out["daemons"]["hardened"] = answers(daemon)
        finally:
            daemon.stop()
            plugin.close()
        for case, make in (("loose", lambda: loose(engine)),
                           ("tls-without-verify", lambda: tls_without_verify(work, engine))):
            made = make()
            try:
                made.start(timeout=90)
                out["daemons"][case] = answers(made)
            finally:
                made.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    recorded = {version: record(version) for version in ENGINES}
    out = Path(__file__).parent / "data" / "host.json"
    out.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    print(f"recorded {', '.join(recorded)} in {out}")


if __name__ == "__main__":
    main()
