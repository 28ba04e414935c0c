"""``docker-covenant rules``: the request policy of one policy file, as a table.

``docker-covenant checks`` lists the fixed catalogue of container checks; request rules
are the operator's own data, so their listing reads the policy file.
"""

from __future__ import annotations

from collections.abc import Mapping

from .api import ApiRule
from .quota import OWNER_LABEL, Quota


def table(rules: tuple[ApiRule, ...], groups: Mapping[str, tuple[str, ...]],
          quotas: tuple[Quota, ...] = ()) -> str:
    """One line per rule (in the order they are tried), the groups they may name, then
    one line per quota."""
    lines = [("RULE", "DENY", "CONTAINERS", "USERS", "EXCEPT")]
    for r in rules:
        d = r.describe()
        containers = ",".join(r.containers) or "*"
        if r.except_containers:
            containers += " except " + ",".join(r.except_containers)
        lines.append((r.name, d["deny"], containers, ",".join(r.users) or "*",
                      ",".join(r.except_users) or "-"))
    out = ["no api_rules in this policy"]
    if len(lines) > 1:
        widths = [max(len(row[i]) for row in lines) for i in range(4)]
        out = ["  ".join(col.ljust(w) for col, w in zip(row[:4], widths)) + "  " + row[4] for row in lines]
    out += [f"group {name}: {', '.join(users)}" for name, users in groups.items()]
    out += [f"quota {q.name}: at most {q.max_running} running " + _per(q) for q in quotas]
    return "\n".join(out) + "\n"


def _per(quota: Quota) -> str:
    if quota.per == "host":
        return "on the host"
    if quota.per == "user":
        return f"per user (by the label {OWNER_LABEL})"
    return f"per value of {quota.per}"
