"""The image gate's shell: run the configured scanner once per image id and keep its
verdict (``checks/scan.py`` reads the report), off every decision's path.

A scan runs on a small pool of its own, never on the thread that decides: a decision asks
:meth:`Scanner.lookup` for the verdict on the container's image, which answers at once
with what is known (or ``pending``) and starts a scan if none ran; only ``unscanned:
wait`` makes the deciding thread wait, and no longer than the bound it is given. When a
scan ends, ``on_verdict`` is called (the events daemon judges the running containers
again, so one allowed while its image was pending is stopped if the verdict rejects it).

A passed or rejected verdict is kept for as long as the process runs (an image id is its
content); a failed scan is retried after ``RETRY_FAILED`` seconds.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .checks import config as container_config
from .checks.scan import report_image_id, verdict
from .engine import EngineNotFoundError
from .policy import ImageScan, Policy

ScanFinder = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
SCANS_AT_ONCE = 2
RETRY_FAILED = 60.0
DETAIL = 300  # characters of a failed scanner's stderr kept for the message


class Scanner:
    def __init__(self, config: Callable[[], ImageScan | None], log: Callable[[], logging.Logger],
                 on_verdict: Callable[[str], None] = lambda image_id: None) -> None:
        self.config = config  # read anew for each scan: a reload may change the scanner
        self.log = log
        self.on_verdict = on_verdict
        self.verdicts: dict[str, tuple[float, dict[str, Any]]] = {}
        self.running: dict[str, Future[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(SCANS_AT_ONCE, thread_name_prefix="scan")
        self.scans = 0  # scanner runs started (tests and /status read it)

    def lookup(self, image_id: str, ref: str, wait: float = 0.0) -> dict[str, Any]:
        """The verdict on ``image_id``, or ``pending`` (with the policy's ``unscanned``);
        with ``wait`` and ``unscanned: wait``, wait up to that many seconds for the scan."""
        config = self.config()
        if config is None:
            return {"state": "failed", "detail": "no image_scan configured"}
        with self.lock:
            known = self.verdicts.get(image_id)
            if known is not None and (known[1]["state"] != "failed" or time.monotonic() < known[0]):
                return known[1]
            future = self.running.get(image_id)
            if future is None:
                self.scans += 1
                future = self.pool.submit(self._scan, image_id, ref)
                self.running[image_id] = future
        if config.unscanned == "wait" and wait > 0:
            try:
                return future.result(timeout=wait)
            except TimeoutError:
                pass
        return {"state": "pending", "unscanned": config.unscanned,
                "detail": "the scan is still running" if config.unscanned == "wait" else ""}

    def _scan(self, image_id: str, ref: str) -> dict[str, Any]:
        try:
            result = self._run(image_id, ref)
        except Exception as e:  # noqa: BLE001 - whatever went wrong is a failed scan, said in the message
            result = {"state": "failed", "detail": f"{type(e).__name__}: {e}"}
        with self.lock:
            until = time.monotonic() + RETRY_FAILED
            self.verdicts[image_id] = (until, result)
            self.running.pop(image_id, None)
        log = self.log()
        if result["state"] == "failed":
            log.warning("image scan of %s failed: %s", ref or image_id[:19], result["detail"])
        else:
            log.info("image scan of %s: %s (%d finding(s) at or above %s, %d in all)", ref or image_id[:19],
                     result["state"], len(result["findings"]), result["threshold"], result["total"])
        try:
            self.on_verdict(image_id)
        except Exception as e:  # noqa: BLE001 - a failed follow-up must not lose the verdict
            log.warning("after the scan of %s: %s", image_id[:19], e)
        return result

    def _run(self, image_id: str, ref: str) -> dict[str, Any]:
        config = self.config()
        if config is None:
            return {"state": "failed", "detail": "no image_scan configured"}
        argv = [arg.replace("{image}", image_id).replace("{ref}", ref or image_id) for arg in config.command]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=config.timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"state": "failed", "detail": f"no report within {config.timeout:g} s"}
        except OSError as e:
            return {"state": "failed", "detail": f"cannot run {argv[0]}: {e.strerror}"}
        try:
            report: Mapping[str, Any] = json.loads(done.stdout)
            result = verdict(report, config.format, config.severity)
        except ValueError as e:
            err = done.stderr.decode(errors="replace").strip()[-DETAIL:]
            return {"state": "failed", "detail": f"exit status {done.returncode}, no {config.format} JSON "
                    f"report ({e})" + (f": {err}" if err else "")}
        if any("{ref}" in arg for arg in config.command) and not any("{image}" in a for a in config.command):
            # the scanner looked the reference up when it ran, and a tag can have been
            # re-pointed since the container named it: the verdict is kept for image_id,
            # so the report must be of that image
            scanned = report_image_id(report, config.format)
            if scanned != image_id:
                return {"state": "failed", "detail": f"a scan of {ref!r} reported image "
                        f"{scanned[:19] or '(none named)'}, not {image_id[:19]}"}
        return result

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def scan_lookup(scanner: Scanner, policy: Callable[[], Policy],
                find_image: Callable[[str], Mapping[str, Any]], wait: float) -> ScanFinder:
    """What an entry point hands ``lookups.look_up``: the verdict on a container's image
    when its section requires one (``image_scan_required``), else None (no scan run).
    An inspected container names its image id; a configuration not created yet (the
    plugin's create) names a reference, looked up here: one the engine does not have is
    ``absent`` (dockerd refuses that create itself, and the start is judged again on the
    stored image id). ``wait`` bounds how long an ``unscanned: wait`` lookup waits."""

    def lookup(container: Mapping[str, Any]) -> Mapping[str, Any] | None:
        current = policy()
        if current.image_scan is None or not current.resolve(container)[0].get("image_scan_required"):
            return None
        ref = str(container_config(container).get("Image") or "")
        image_id = str(container.get("Image") or "")
        if not image_id.startswith("sha256:"):
            try:
                image_id = str(find_image(ref)["Id"])
            except EngineNotFoundError:
                return {"state": "absent"}
        return scanner.lookup(image_id, ref, wait=min(wait, current.image_scan.timeout))

    return lookup
