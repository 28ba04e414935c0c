"""``docker-covenant test FILE...``: policy tests, inputs paired with the verdict expected.

A test file names a policy (relative to the test file; ``--config`` overrides it) and a
list of cases. Each case has a ``name``, one input and an ``expect``ed verdict: ``allowed``,
or the exact set of check ids the policy flags (``[CV001, CV003]``; a request rule or a
quota of the plugin as ``rule:NAME``, ``quota:NAME``)::

    policy: ../docker-covenant.yml
    cases:
      - name: a privileged web is refused
        inspect: data/web-privileged.json      # saved `docker inspect` output, or inline
        expect: [CV001]
      - name: compliant app
        create: {name: app, body: {Image: busybox, HostConfig: {CapDrop: [ALL]}}}
        expect: allowed

Inputs are a small table (``INPUTS``): a kind is a key of a case, the extra case keys it
reads, and a function from the value to the ``Subject``\\ s it yields, each judged by one
of the evaluators every entry point uses. ``inspect`` goes through ``Policy.decide`` as
``audit --inspect`` does; ``create`` through the authorization plugin's own judgement of
``POST /containers/create`` (``authz.judge``: request rules, the body decoded as dockerd
decodes it, the per-user quota's label); ``compose`` through ``covenant.compose.services``
and ``Policy.decide``, as ``audit --compose`` does.

No engine is asked anything: a named volume (but one a compose file defines) or a
container referenced (``--volumes-from``, ``--network container:X``) is unknown, a bind
source is judged as written, no image is scanned (a section requiring a scan finds no
verdict: CV301).

Exit status: 0 every case passed, 1 a case failed, 2 an error (a file that cannot be read,
a case that cannot be judged, a policy that cannot be used), with FILE:LINE where known.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .audit import AuditError, load_inspect
from .authz.judge import OfflineEngine, create_request, flagged, judge
from .authz.route import RouteError
from .checks import CHECKS, USAGE_CHECKS
from .compose import ComposeError, ComposeService, services
from .policy import Policy, PolicyError, load_policy

PASSED, FAILED, ERROR = 0, 1, 2
KNOWN_IDS = frozenset(CHECKS) | frozenset(c.id for c in USAGE_CHECKS)


class SuiteError(Exception):
    """A test file or case that cannot be used; ``str()`` is ``FILE:LINE: message``."""

    def __init__(self, where: str, message: str) -> None:
        self.where, self.message = where, message
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Outcome:
    """What a policy said of one subject: the check ids it flags, with their messages."""

    checks: frozenset[str]
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subject:
    """One thing a case judges: what ``-v`` calls it, and how a policy judges it."""

    label: str
    judge: Callable[[Policy], Outcome]


@dataclass(frozen=True)
class Context:
    """What an input's reader may use: the test file's folder, where the case is, the case."""

    base: Path
    where: str
    case: Mapping[str, Any]


@dataclass(frozen=True)
class InputKind:
    read: Callable[[Any, Context], list[Subject]]
    keys: tuple[str, ...] = ()  # the extra case keys it reads
    help: str = ""


def _decided(container: Mapping[str, Any]) -> Callable[[Policy], Outcome]:
    def decide(policy: Policy) -> Outcome:
        d = policy.decide(dict(container))
        return Outcome(frozenset(v.check for v in d.violations), tuple(f"[{v.check}] {v.message}"
                                                                      for v in d.violations))
    return decide


def _inspect(value: Any, ctx: Context) -> list[Subject]:
    """A file of saved ``docker inspect`` output (relative to the test file), or the same
    inline: one container, or several (each must get the verdict), ``container: NAME``
    picking one of them."""
    if isinstance(value, str):
        path = ctx.base / value
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SuiteError(ctx.where, f"inspect: cannot read {value}: {e.strerror}") from None
        source = str(path)
    elif isinstance(value, (dict, list)):
        text, source = json.dumps(value), f"{ctx.where}: inspect"
    else:
        raise SuiteError(ctx.where, "inspect: expected a file name or `docker inspect` data (a mapping "
                         f"or a list of them), got {value!r}")
    try:
        containers = load_inspect(text, source)
    except AuditError as e:
        raise SuiteError(ctx.where, f"inspect: {e}") from None
    wanted = ctx.case.get("container")
    if wanted is not None:
        if not isinstance(wanted, str) or not wanted:
            raise SuiteError(ctx.where, f"container: expected a container name, got {wanted!r}")
        containers = [c for c in containers if str(c.get("Name") or "").lstrip("/") == wanted.lstrip("/")]
        if not containers:
            raise SuiteError(ctx.where, f"container: no container named {wanted!r} in the inspect data")
    return [Subject(str(c.get("Name") or "(unnamed)").lstrip("/"), _decided(c)) for c in containers]


def _create(value: Any, ctx: Context) -> list[Subject]:
    """``{name: NAME, body: {...}, user: USER}``: a ``POST /containers/create`` body (a
    mapping, or JSON text sent as it is), its ``name`` query parameter and, for rules and
    quotas that name users, the authenticated user."""
    if not isinstance(value, dict):
        raise SuiteError(ctx.where, f"create: expected a mapping (name, body, user), got {value!r}")
    unknown = sorted(set(value) - {"name", "body", "user"})
    if unknown:
        raise SuiteError(ctx.where, f"create: unknown key {unknown[0]!r} (known: name, body, user)")
    name, body, user = value.get("name", ""), value.get("body"), value.get("user", "")
    if not isinstance(name, str) or not isinstance(user, str):
        raise SuiteError(ctx.where, "create: name and user must be strings")
    if isinstance(body, str):
        raw: dict[str, Any] | bytes = body.encode()
    elif isinstance(body, dict):
        raw = body
    else:
        raise SuiteError(ctx.where, f"create: body: expected the request body (a mapping, or JSON text), "
                         f"got {body!r}")
    try:
        request = create_request(name, raw, user)
    except RouteError as e:
        raise SuiteError(ctx.where, f"create: name: {e}") from None

    def decide(policy: Policy) -> Outcome:
        verdict = judge(policy, request, OfflineEngine())
        if verdict.malformed:
            raise SuiteError(ctx.where, f"create: the plugin cannot read this body: {verdict.msg}")
        found = flagged(verdict)
        return Outcome(frozenset(v.check for v in found), tuple(f"[{v.check}] {v.message}" for v in found))

    return [Subject(f"create {name or '(unnamed)'}", decide)]


def _compose(value: Any, ctx: Context) -> list[Subject]:
    """A compose file (relative to the test file): each container its services would
    create, as ``audit --compose`` judges them; ``service: NAME`` picks one service,
    ``project: NAME`` names the project, ``env: {VAR: value}`` sets interpolation
    variables (over the environment)."""
    if not isinstance(value, str) or not value:
        raise SuiteError(ctx.where, f"compose: expected a compose file name, got {value!r}")
    service, project, env = ctx.case.get("service"), ctx.case.get("project"), ctx.case.get("env")
    if service is not None and not isinstance(service, str):
        raise SuiteError(ctx.where, f"service: expected a service name, got {service!r}")
    if project is not None and not isinstance(project, str):
        raise SuiteError(ctx.where, f"project: expected a project name, got {project!r}")
    if env is not None and not (isinstance(env, dict) and all(isinstance(k, str) for k in env)):
        raise SuiteError(ctx.where, f"env: expected a mapping of variables, got {env!r}")
    variables = {**os.environ, **{k: "" if v is None else str(v) for k, v in (env or {}).items()}}
    try:
        found = services(str(ctx.base / value), project, variables)
    except ComposeError as e:
        raise SuiteError(ctx.where, f"compose: {e}") from None
    if service is not None:
        found = [s for s in found if s.service == service]
        if not found:
            raise SuiteError(ctx.where, f"service: no service {service!r} in {value}")

    def decided(s: ComposeService) -> Callable[[Policy], Outcome]:
        def decide(policy: Policy) -> Outcome:
            d = policy.decide(s.container, s.lookups)
            return Outcome(frozenset(v.check for v in d.violations),
                           tuple(f"[{v.check}] {v.message}" for v in d.violations))
        return decide

    return [Subject(f"{s.service} ({s.name})", decided(s)) for s in found]


# The input kinds: a case holds exactly one of these keys.
INPUTS: dict[str, InputKind] = {
    "inspect": InputKind(_inspect, ("container",), "saved `docker inspect` JSON: a file or inline"),
    "create": InputKind(_create, (), "a POST /containers/create body with its name (and user)"),
    "compose": InputKind(_compose, ("service", "project", "env"),
                         "a compose file: each container its services would create"),
}
CASE_KEYS = ("name", "expect")


@dataclass
class Case:
    name: str
    where: str  # the case's first line
    input_where: str  # its input's line
    kind: str
    value: Any
    expect: frozenset[str]
    data: Mapping[str, Any]


@dataclass
class Suite:
    path: Path
    policy: str | None
    policy_where: str
    cases: list[Case] = field(default_factory=list)
    errors: list[SuiteError] = field(default_factory=list)  # cases that cannot be read


def _key_lines(node: yaml.Node) -> dict[Any, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def read_suite(path: str) -> Suite:
    """The test file, every case checked (a bad case is kept as an error, the others run)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SuiteError(path, f"cannot read test file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise SuiteError(path, f"not text: {e.reason}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise SuiteError(f"{path}:{mark.line + 1}" if mark else path,
                         f"YAML syntax error: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SuiteError(path, f"YAML error: {e}") from None
    if not isinstance(doc, dict) or node is None:
        raise SuiteError(f"{path}:1", "a test file is a mapping: policy (optional) and cases")
    lines = _key_lines(node)
    for key in doc:
        if key not in ("policy", "cases"):
            raise SuiteError(f"{path}:{lines.get(key, 1)}", f"unknown key {key!r} (known: policy, cases)")
    policy = doc.get("policy")
    policy_where = f"{path}:{lines.get('policy', 1)}"
    if policy is not None and (not isinstance(policy, str) or not policy):
        raise SuiteError(policy_where, f"policy: expected a file name, got {policy!r}")
    cases = doc.get("cases")
    cases_node = next((v for k, v in node.value if getattr(k, "value", None) == "cases"), None)
    if not isinstance(cases, list) or not cases or not isinstance(cases_node, yaml.SequenceNode):
        raise SuiteError(f"{path}:{lines.get('cases', 1)}", "cases: expected a list of cases")
    suite = Suite(Path(path), policy, policy_where)
    for item, item_node in zip(cases, cases_node.value, strict=True):
        where = f"{path}:{item_node.start_mark.line + 1}"
        try:
            suite.cases.append(_case(item, where, _key_lines(item_node)))
        except SuiteError as e:
            suite.errors.append(e)
    return suite


def _case(item: Any, where: str, lines: dict[Any, int]) -> Case:
    if not isinstance(item, dict):
        raise SuiteError(where, f"a case is a mapping (name, one of {', '.join(INPUTS)}, expect), "
                         f"got {item!r}")

    def at(key: str) -> str:
        return f"{where.rpartition(':')[0]}:{lines[key]}" if key in lines else where

    kinds = [k for k in INPUTS if k in item]
    if len(kinds) != 1:
        raise SuiteError(where, f"a case has exactly one input ({', '.join(INPUTS)}); "
                         f"got {', '.join(kinds) or 'none'}")
    kind = kinds[0]
    known = (*CASE_KEYS, kind, *INPUTS[kind].keys)
    for key in item:
        if key not in known:
            raise SuiteError(at(str(key)), f"unknown key {key!r} in a {kind} case "
                             f"(known: {', '.join(known)})")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise SuiteError(where, "name: every case needs a name")
    if "expect" not in item:
        raise SuiteError(where, f"{name}: expect: missing (allowed, or the list of check ids)")
    return Case(name, where, at(kind), kind, item[kind], _expect(at("expect"), item["expect"]), item)


def _expect(where: str, value: Any) -> frozenset[str]:
    if value in ("allowed", []):
        return frozenset()
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise SuiteError(where, f"expect: expected allowed or a list of check ids, got {value!r}")
    out = set()
    for i in ids:
        if i.startswith(("rule:", "quota:")) and i.partition(":")[2]:
            out.add(i)
        elif i.upper() in KNOWN_IDS:
            out.add(i.upper())
        else:
            raise SuiteError(where, f"expect: unknown check id {i!r} (CV001..., rule:NAME, quota:NAME; "
                             "see docker-covenant checks)")
    return frozenset(out)


def _shown(checks: frozenset[str]) -> str:
    return "allowed" if not checks else "[" + ", ".join(sorted(checks)) + "]"


class Runner:
    def __init__(self, config: str | None, verbose: bool, out: TextIO, err: TextIO) -> None:
        self.config, self.verbose, self.out, self.err = config, verbose, out, err
        self.passed = self.failed = self.errors = 0
        self._policies: dict[str, Policy] = {}

    def error(self, e: SuiteError) -> None:
        self.errors += 1
        print(f"docker-covenant: error: {e}", file=self.err)

    def policy(self, suite: Suite) -> Policy:
        if self.config:
            path, where = self.config, "--config"
        elif suite.policy:
            path, where = str(suite.path.parent / suite.policy), suite.policy_where
        else:
            raise SuiteError(f"{suite.path}:1", "no policy: name one (policy: FILE, relative to the test "
                             "file) or pass --config")
        if path not in self._policies:
            try:
                self._policies[path] = load_policy(path)
            except PolicyError as e:
                raise SuiteError(where, f"policy: {e}") from None
        return self._policies[path]

    def run_file(self, path: str) -> None:
        try:
            suite = read_suite(path)
            policy = self.policy(suite)
        except SuiteError as e:
            self.error(e)
            return
        for bad in suite.errors:
            self.error(bad)
        for case in suite.cases:
            self.run_case(policy, case, suite.path.parent)

    def run_case(self, policy: Policy, case: Case, base: Path) -> None:
        ctx = Context(base, case.input_where, case.data)
        try:
            subjects = INPUTS[case.kind].read(case.value, ctx)
            outcomes = [(s, s.judge(policy)) for s in subjects]
        except SuiteError as e:
            self.error(e)
            return
        bad = [(s, o) for s, o in outcomes if o.checks != case.expect]
        if not bad:
            self.passed += 1
            if self.verbose:
                got = ", ".join(s.label for s, _ in outcomes)
                print(f"ok    {case.where}: {case.name} ({got}): {_shown(case.expect)}", file=self.out)
            return
        self.failed += 1
        for s, o in bad:
            print(f"FAIL  {case.where}: {case.name} ({s.label}): expected {_shown(case.expect)}, "
                  f"got {_shown(o.checks)}", file=self.out)
            for message in o.messages:
                if message.partition("]")[0].lstrip("[") not in case.expect:
                    print(f"        unexpected {message}", file=self.out)
            for missing in sorted(case.expect - o.checks):
                print(f"        missing {missing}", file=self.out)

    def summary(self) -> int:
        text = f"{self.passed} passed, {self.failed} failed"
        print(text + (f", {self.errors} errors" if self.errors else ""), file=self.out)
        return ERROR if self.errors else FAILED if self.failed else PASSED


def run(files: Sequence[str], config: str | None = None, verbose: bool = False,
        out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run every test file; print failures (every case with ``verbose``) and a summary line."""
    runner = Runner(config, verbose, out or sys.stdout, err or sys.stderr)
    for path in files:
        runner.run_file(path)
    return runner.summary()
