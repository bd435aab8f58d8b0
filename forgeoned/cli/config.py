"""forgeonectl ``config check [PATH]``: the daemon's configuration checked as a start or a
reload would check it, offline (see :mod:`forgeoned.daemon.check`); the same as
``forgeoned --check-config PATH``. Exits 0 with a summary, or non-zero with the one-line
reason the daemon would give."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from forgeoned.cli.exitcodes import OK
from forgeoned.daemon.check import DEFAULT_CONFIG, check_config


def register(sub: argparse._SubParsersAction[Any]) -> None:
    config = sub.add_parser("config", help="the daemon's configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    p = config_sub.add_parser(
        "check", help="validate a config as a start or reload would (no daemon needed)"
    )
    p.add_argument(
        "path", nargs="?", type=Path, default=DEFAULT_CONFIG, help="(default: %(default)s)"
    )
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    print("\n".join(check_config(args.path).lines()))
    return OK
