"""API request rules: forbid calls by method and path, optionally per container and per user.

A rule is policy data::

    api_rules:
      - name: no-cp-into-db
        deny: PUT /containers/{container}/archive
        containers: ['db-*']
        except_users: ['@ops']

It is matched on the path as dockerd routed it (``authz/route.py``: decoded, clean, the
``/vX.Y`` prefix removed), because that is the endpoint dockerd will run; matching the raw
request target would let ``/v1.41/containers/x/archive`` or ``%2F`` spellings slip past.
Everything here is pure: the shell resolves ``{container}``/``{exec}`` to a container name
and passes it in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..checks import Container, container_name
from ..selectors import selector_kind, selects

# The methods dockerd routes (api/server/router): a rule naming another can never match.
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
PLACEHOLDERS = {"{container}": "container", "{exec}": "exec"}
RULE_KEYS = ("name", "deny", "containers", "except_containers", "users", "except_users")
# What the plugin asks dockerd to resolve {container} and {exec}: its own requests pass
# through the plugin too, so a rule that needs the container and matches them would ask
# again, without end.
OWN_LOOKUPS = ("/containers/x/json", "/exec/x/json")
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
USER_GROUP = re.compile(r"^@[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RuleError(ValueError):
    """A rule that cannot be used: ``line`` and ``message`` become a ``PolicyError``."""

    def __init__(self, line: int | None, message: str) -> None:
        self.line, self.message = line, message
        super().__init__(message)


@dataclass(frozen=True)
class ApiRule:
    """One request rule. ``target``: "container" or "exec" when the path names one (the
    ``ref`` group of ``pattern``), else None."""

    name: str
    methods: frozenset[str]  # empty: any method
    path: str  # as written
    pattern: re.Pattern[str]
    target: str | None = None
    containers: tuple[str, ...] = ()  # selectors (as section keys); empty: any container
    except_containers: tuple[str, ...] = ()  # selectors of containers it never binds
    users: tuple[str, ...] = ()  # names or @groups the rule applies to; empty: everyone
    except_users: tuple[str, ...] = ()  # names or @groups it never applies to
    line: int | None = None

    @property
    def needs_user(self) -> bool:
        return bool(self.users or self.except_users)

    @property
    def needs_container(self) -> bool:
        return bool(self.containers or self.except_containers)

    def binds_container(self, container: Container) -> bool:
        """Whether the rule covers this container: selected by ``containers`` (all when
        absent) and by none of ``except_containers``."""
        def chosen(selectors: tuple[str, ...]) -> bool:
            return any(selects(*_kind(sel), container) for sel in selectors)
        return (not self.containers or chosen(self.containers)) and not chosen(self.except_containers)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "deny": f"{'|'.join(sorted(self.methods)) or '*'} {self.path}",
                "containers": list(self.containers), "except_containers": list(self.except_containers),
                "users": list(self.users),
                "except_users": list(self.except_users)}


@dataclass(frozen=True)
class ApiCall:
    """A request as the rules see it: the method, the routed path, the authenticated user
    dockerd passed ("" when it passed none: no TLS client authentication)."""

    method: str
    path: str
    user: str = ""


@dataclass(frozen=True)
class Denial:
    rule: str
    message: str


def compile_path(path: str) -> tuple[re.Pattern[str], str | None]:
    """``*`` matches any characters, ``/`` included (as dockerd's own ``{name:.*}``
    variables do, so that a pattern never misses a path dockerd routes to the same
    endpoint); ``{container}``/``{exec}`` match the reference dockerd will resolve."""
    target = None
    out = ["^"]
    for piece in re.split(r"(\{container\}|\{exec\}|\*)", path):
        if piece in PLACEHOLDERS:
            target = PLACEHOLDERS[piece]
            out.append("(?P<ref>.+)")
        elif piece == "*":
            out.append(".*")
        else:
            out.append(re.escape(piece))
    out.append("$")
    return re.compile("".join(out)), target


def parse_groups(value: Any, line: int | None) -> dict[str, tuple[str, ...]]:
    """``groups: {ops: [alice, bob]}``: named lists of users (TLS certificate common names)."""
    if not isinstance(value, Mapping):
        raise RuleError(line, f"groups: expected a mapping of group names to lists of users, got {value!r}")
    lines = getattr(value, "lines", {})
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in value.items():
        where = lines.get(name, line)
        if not isinstance(name, str) or not RULE_NAME.match(name):
            raise RuleError(where, f"groups: a group name is letters, digits, '.', '_' or '-', got {name!r}")
        if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
            raise RuleError(where, f"groups.{name}: expected a list of user names, got {members!r}")
        groups[name] = tuple(members)
    return groups


def parse_rules(value: Any, line: int | None, groups: Mapping[str, tuple[str, ...]]) -> tuple[ApiRule, ...]:
    """``api_rules:``, validated: every error names the rule's line and key."""
    if not isinstance(value, list):
        raise RuleError(line, f"api_rules: expected a list of rules, got {value!r}")
    rules: list[ApiRule] = []
    for i, item in enumerate(value):
        rule = _rule(item, i, line, groups)
        if any(r.name == rule.name for r in rules):
            raise RuleError(rule.line, f"api_rules[{i}].name: {rule.name!r} names an earlier rule too")
        rules.append(rule)
    return tuple(rules)


def _rule(item: Any, i: int, line: int | None, groups: Mapping[str, tuple[str, ...]]) -> ApiRule:
    where = f"api_rules[{i}]"
    if not isinstance(item, Mapping):
        raise RuleError(line, f"{where}: a rule is a mapping with name and deny, got {item!r}")
    lines: dict[Any, int] = getattr(item, "lines", {})
    first = min(lines.values(), default=line)
    for key in item:
        if key not in RULE_KEYS:
            raise RuleError(lines.get(key, first), f"{where}: unknown key {key!r} (known: "
                            + ", ".join(RULE_KEYS) + ")")
    name = item.get("name")
    if not isinstance(name, str) or not RULE_NAME.match(name):
        raise RuleError(lines.get("name", first), f"{where}.name: expected a rule name (letters, digits, "
                        f"'.', '_', '-'), got {name!r}")
    where = f"api_rules[{i}] ({name})"
    deny = item.get("deny")
    methods, path = _deny(deny, f"{where}.deny", lines.get("deny", first))
    pattern, target = compile_path(path)
    placeholders = sum(path.count(p) for p in PLACEHOLDERS)
    if path.count("{") != placeholders or placeholders > 1:
        raise RuleError(lines.get("deny", first), f"{where}.deny: at most one placeholder, {{container}} or "
                        f"{{exec}}, got {path!r}")
    containers = _selectors(item.get("containers"), f"{where}.containers", lines.get("containers", first))
    excepted = _selectors(item.get("except_containers"), f"{where}.except_containers",
                          lines.get("except_containers", first))
    if (containers or excepted) and target is None:
        key = "containers" if containers else "except_containers"
        raise RuleError(lines.get(key, first), f"{where}.{key}: the path names no container "
                        "(put {container} or {exec} where dockerd's path has it)")
    if containers or excepted:
        for own in OWN_LOOKUPS:
            if (not methods or "GET" in methods) and pattern.match(own):
                raise RuleError(lines.get("deny", first), f"{where}.deny: it matches GET {own}, the lookup "
                                "the plugin itself makes to find the container a rule names: such a rule can "
                                "never be checked (name the method and the endpoint you mean)")
    users = _users(item.get("users"), f"{where}.users", lines.get("users", first), groups)
    except_users = _users(item.get("except_users"), f"{where}.except_users",
                          lines.get("except_users", first), groups)
    return ApiRule(name, methods, path, pattern, target, containers, excepted, users, except_users, first)


def _deny(deny: Any, where: str, line: int | None) -> tuple[frozenset[str], str]:
    parts = deny.split() if isinstance(deny, str) else []
    if len(parts) != 2 or not parts[1].startswith("/"):
        raise RuleError(line, f"{where}: expected 'METHOD /path' (such as 'DELETE /volumes/*'), got {deny!r}")
    methods = frozenset() if parts[0] == "*" else frozenset(parts[0].split("|"))
    unknown = sorted(methods - set(METHODS))
    if unknown:
        raise RuleError(line, f"{where}: unknown method {unknown[0]!r} (dockerd routes "
                        + ", ".join(METHODS) + "; * for any)")
    return methods, parts[1]


def _strings(value: Any, where: str, line: int | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise RuleError(line, f"{where}: expected a non-empty list of strings, got {value!r}")
    return tuple(value)


def _kind(selector: str) -> tuple[str, str]:
    found = selector_kind(selector)
    assert found is not None  # _selectors accepted it
    return found


def _selectors(value: Any, where: str, line: int | None) -> tuple[str, ...]:
    """Container selectors, as section keys write them: a name, a name glob,
    ``image=GLOB``, ``label=KEY[=GLOB]``."""
    found = _strings(value, where, line)
    for sel in found:
        if selector_kind(sel) is None:
            raise RuleError(line, f"{where}: {sel!r} is neither a container name, a name glob, image=PATTERN "
                            "nor label=KEY[=VALUE]")
    return found


def _users(value: Any, where: str, line: int | None,
           groups: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    users = _strings(value, where, line)
    for user in users:
        if user.startswith("@") and (not USER_GROUP.match(user) or user[1:] not in groups):
            raise RuleError(line, f"{where}: no group {user[1:]!r} under groups: (known: "
                            + (", ".join(groups) or "none") + ")")
    return users


# -- matching ------------------------------------------------------------------------------

def members(names: tuple[str, ...], groups: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The users ``names`` stands for, groups expanded."""
    out: set[str] = set()
    for n in names:
        out |= set(groups.get(n[1:], ())) if n.startswith("@") else {n}
    return frozenset(out)


def applies_to(rule: ApiRule, user: str, groups: Mapping[str, tuple[str, ...]]) -> tuple[bool, str]:
    """(whether the rule binds this user, why in words). With no user (dockerd without TLS
    client authentication passes none) a rule that selects users binds: it fails closed."""
    if not rule.needs_user:
        return True, ""
    if not user:
        return True, " (no authenticated user: the rule selects users and dockerd passed none)"
    if rule.users and user not in members(rule.users, groups):
        return False, ""
    if user in members(rule.except_users, groups):
        return False, ""
    return True, f" (user {user})"


def matches(rule: ApiRule, call: ApiCall) -> re.Match[str] | None:
    if rule.methods and call.method not in rule.methods:
        return None
    return rule.pattern.match(call.path)


def lookups_needed(rules: tuple[ApiRule, ...], call: ApiCall) -> set[tuple[str, str]]:
    """The (target, reference) pairs whose container names the rules need for ``call``."""
    return {(r.target, m.group("ref")) for r in rules
            if r.needs_container and r.target and (m := matches(r, call)) is not None}


def judge(rules: tuple[ApiRule, ...], groups: Mapping[str, tuple[str, ...]], call: ApiCall,
          found: Mapping[tuple[str, str], Container | None]) -> Denial | None:
    """The first rule that forbids ``call``, in file order. ``found`` maps each pair of
    ``lookups_needed`` to the container's inspect, or None when dockerd knows no such
    object (then a rule that needs the container denies: fail closed)."""
    for rule in rules:
        m = matches(rule, call)
        if m is None:
            continue
        binds, why = applies_to(rule, call.user, groups)
        if not binds:
            continue
        said = f"{call.method} {call.path}"
        if not rule.needs_container:
            return Denial(rule.name, f"[rule {rule.name}] {said} is not allowed{why}")
        assert rule.target is not None  # parse_rules: containers need a placeholder
        ref = m.group("ref")
        container = found.get((rule.target, ref))
        if container is None:
            return Denial(rule.name, f"[rule {rule.name}] {said}: no {rule.target} {ref!r} to check the rule "
                          "against; denied")
        if rule.binds_container(container):
            return Denial(rule.name, f"[rule {rule.name}] {said} is not allowed on container "
                          f"{container_name(container)}{why}")
    return None


def rename_escape(rules: tuple[ApiRule, ...], groups: Mapping[str, tuple[str, ...]], container: Container,
                  new: str, user: str) -> Denial | None:
    """Rules select containers by name too, and anyone may rename: renaming ``db-1`` to
    ``x`` would take it out of a rule on ``db-*``. A rename out of the containers of a
    rule that binds this user is refused."""
    old = container_name(container)
    for rule in rules:
        if not rule.needs_container or not applies_to(rule, user, groups)[0]:
            continue
        before = rule.binds_container(container)
        after = rule.binds_container({**container, "Name": f"/{new}"})
        if before and not after:
            return Denial(rule.name, f"[rule {rule.name}] renaming {old} to {new} would take it out of the "
                          "rule's containers")
    return None
