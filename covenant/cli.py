"""Command line: ``docker-covenant [--config PATH] [--check-config]``."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .policy import PolicyError, find_config, load_policy

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
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        policy = load_policy(find_config(args.config))
    except PolicyError as e:
        print(f"docker-covenant: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        json.dump(policy.describe(), sys.stdout, indent=2)
        print()
        return 0
    from .daemon import run

    return run(policy)


if __name__ == "__main__":
    sys.exit(main())
