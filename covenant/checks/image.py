"""What the container runs: an allowed image reference, and a health check for it."""

from __future__ import annotations

import fnmatch

from .model import Container, Settings
from .reading import config


def _image(c: Container, s: Settings) -> str | None:
    patterns, digests_only = s["allowed_images"], s["digests_only"]
    image = str(config(c).get("Image") or "")
    if digests_only and "@sha256:" not in image:
        return f" ({image}: not pinned by digest)"
    if patterns is not None and not any(fnmatch.fnmatchcase(image, p) for p in patterns):
        return f" ({image})"
    return None


def _healthcheck(c: Container, s: Settings) -> str | None:
    if not s["healthcheck_required"]:
        return None
    test = (config(c).get("Healthcheck") or {}).get("Test") or []
    return "" if not test or test[0] == "NONE" else None
