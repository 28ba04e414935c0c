"""The shapes every check shares: what it reads (one container's ``docker inspect``
dictionary and the settings the policy resolved for it) and what it reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Container = Mapping[str, Any]
Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Violation:
    """One broken rule: the check's stable id and the operator-facing message."""

    check: str
    message: str
