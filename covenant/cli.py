"""Command line: ``docker-covenant [--config PATH] [--check-config] [audit|checks]``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import __version__
from .policy import Policy, PolicyError, find_config, load_policy, parse_address
from .reports import FAIL_ON_HELP, parse_fail_on

EXIT_CONFIG = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="docker-covenant",
        description="Stop Docker containers that break the host's policy, as they start.")
    p.add_argument("--config", metavar="PATH",
                   help="policy file (default: ./docker-covenant.yml, "
                        "else /etc/docker-covenant/docker-covenant.yml)")
    p.add_argument("--check-config", action="store_true",
                   help="validate the policy file, print the effective policy as JSON, and exit")
    p.add_argument("--metrics-address", metavar="HOST:PORT",
                   help="serve /metrics, /healthz and /status here (off by default; "
                        ":PORT means 127.0.0.1:PORT); overrides metrics_address in the policy")
    p.add_argument("--shadow", metavar="PATH", help="a shadow policy: judged beside the enforced one, "
                   "logged and counted, never acted on (overrides shadow: in the policy)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND",
                           description="with no command it runs the daemon")
    a = sub.add_parser("audit", help="evaluate every running container once and report; stops nothing",
                       description="Evaluate every running container once with the daemon's evaluator "
                                   "and report. Exit 0: all comply; 1: a violation; 2: an error.")
    a.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="policy file")
    a.add_argument("--format", choices=("table", "json", "sarif", "junit"), default="table",
                   help="table (default), json, sarif (SARIF 2.1.0) or junit (JUnit XML)")
    a.add_argument("--fail-on", metavar="WHAT", default="low", help=FAIL_ON_HELP)
    a.add_argument("--inspect", metavar="FILE",
                   help="evaluate saved `docker inspect` JSON instead (- for stdin); no engine needed")
    a.add_argument("--compose", metavar="FILE", help="judge a compose file's services as the containers "
                   "they would be, before deploy; no engine needed")
    a.add_argument("-p", "--project-name", metavar="NAME", help="compose project name (with --compose)")
    a.add_argument("-H", "--host", action="append", default=[], metavar="HOST",
                   help="an engine to audit, as docker -H names it; repeat for several (one report, "
                        "the host on every row)")
    a.add_argument("--context", action="append", default=[], metavar="NAME",
                   help="a Docker context to audit (docker context ls); repeatable, with --host too")
    a.add_argument("--tlsverify", action="store_true", help="TLS, verifying the engine (tcp --host)")
    a.add_argument("--tlscacert", metavar="FILE", help="CA the engine's certificate is checked against")
    a.add_argument("--tlscert", metavar="FILE", help="client certificate")
    a.add_argument("--tlskey", metavar="FILE", help="client key")
    a.add_argument("--against", metavar="OLD", help="list what --config would newly stop or allow "
                   "compared with policy OLD (exit 1 if it would newly stop something)")
    t = sub.add_parser("test", help="run policy tests: inputs paired with the verdict expected",
                       description="Run policy test files (README: Policy tests). Exit 0: all passed; "
                                   "1: a case failed; 2: an error.")
    t.add_argument("files", nargs="+", metavar="FILE", help="test files")
    t.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="the policy to test (instead of the files' policy:)")
    t.add_argument("-v", "--verbose", action="store_true", help="print every case")
    sub.add_parser("checks", help="list the check catalogue")
    r = sub.add_parser("rules", help="list the policy's API request rules, groups and quotas",
                       description="List the request rules (api_rules) of the policy file, in the order "
                                   "the authorization plugin tries them, the user groups and the quotas.")
    r.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="policy file")
    z = sub.add_parser("authz", help="serve the Docker authorization plugin (refuse violators at create)",
                       description="Serve the Docker authorization-plugin API on a unix socket that dockerd "
                                   "finds by name (dockerd --authorization-plugin=NAME).")
    z.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="policy file")
    z.add_argument("--name", default="docker-covenant", help="plugin name (default: docker-covenant)")
    z.add_argument("--socket-dir", default="/run/docker/plugins", metavar="DIR",
                   help="where dockerd looks for plugin sockets (default: /run/docker/plugins)")
    z.add_argument("--shadow", metavar="PATH", default=argparse.SUPPRESS, help="a shadow policy (as above)")
    z.add_argument("--watch", action="store_true",
                   help="also follow the events stream and stop violators, as a second line")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command in ("checks", "test"):
        return _without_policy(args)
    if args.command == "audit":
        try:
            parse_fail_on(args.fail_on)  # a usage error before the policy is read
        except ValueError as e:
            p.error(str(e))
        sources = [name for name, given in (("--inspect", args.inspect), ("--compose", args.compose),
                                            ("-H/--context", args.host or args.context)) if given]
        if len(sources) > 1:  # each names what is judged: one, not one silently over another
            p.error(f"{' and '.join(sources)} cannot be combined: give one of them")
        if args.against and args.compose:
            p.error("--against compares on running containers or --inspect output, not --compose")
    if args.metrics_address:
        try:
            parse_address(args.metrics_address)
        except ValueError as e:
            p.error(str(e))
    try:
        policy = load_policy(find_config(args.config))
    except PolicyError as e:
        print(f"docker-covenant: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config or args.command in ("rules", "audit"):  # the daemon says it in its log
        _warn_expired(policy)
    if args.check_config:
        json.dump(policy.describe(), sys.stdout, indent=2)
        print()
        return 0
    if args.command in ("rules", "audit"):
        return _offline(args, policy)
    from .daemon import run

    if args.command == "authz":
        from .authz import socket_path

        return run(policy, args.metrics_address, socket_path(args.name, args.socket_dir), watch=args.watch,
                   shadow=args.shadow)
    return run(policy, args.metrics_address, shadow=args.shadow)


def _without_policy(args: argparse.Namespace) -> int:
    """``checks`` lists the catalogue; ``test`` runs test files, each naming its policy."""
    if args.command == "test":
        from .policytests import run as run_tests

        return run_tests(args.files, args.config, args.verbose)
    from .audit import catalogue

    sys.stdout.write(catalogue())
    return 0


def _warn_expired(policy: Policy) -> None:
    """A waiver whose end has passed is a warning, not an error: a file does not stop
    working on a date; the waiver just no longer applies."""
    from .policy import utc

    for w in policy.expired_waivers(time.time()):
        print(f"docker-covenant: warning: {policy.source}:{w.line}: {w.section}: waiver of "
              f"{','.join(sorted(w.checks))} expired at {utc(w.expires or 0)} ({w.note()}); "
              "it no longer applies", file=sys.stderr)


def _offline(args: argparse.Namespace, policy: Policy) -> int:
    """The commands that run once and exit: ``rules`` lists, ``audit`` judges."""
    if args.command == "rules":
        from .rules.listing import table

        sys.stdout.write(table(policy.api_rules, policy.groups, policy.quotas))
        return 0
    if args.command == "audit":
        from . import audit
        from .fleet import FleetError, targets

        try:
            fleet = targets(args.host, args.context, args.tlsverify, args.tlscacert, args.tlscert,
                            args.tlskey)
        except FleetError as e:
            print(f"docker-covenant: error: {e}", file=sys.stderr)
            return EXIT_CONFIG
        if args.against:
            from .diff import run as run_diff

            return run_diff(policy, args.against, args.format, args.inspect, fleet)
        return audit.run(policy, args.format, args.inspect, fleet, parse_fail_on(args.fail_on),
                         args.compose, args.project_name)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
