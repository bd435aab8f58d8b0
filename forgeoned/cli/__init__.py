"""forgeonectl: the command-line interface of forgeoned.

Each command group lives in its own module exposing ``register(subparsers)``; a command's
handler takes the parsed arguments and returns the process exit code. Every failure exits
non-zero with a one-line ``forgeonectl: reason`` on stderr (see ``forgeoned.cli.exitcodes``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from forgeoned import __version__
from forgeoned.cli.exitcodes import exit_code_for
from forgeoned.errors import ForgeonedError

COMMAND_MODULES = (
    "forgeoned.cli.keys",
    "forgeoned.cli.artifacts",
    "forgeoned.cli.control",
    "forgeoned.cli.audit",
    "forgeoned.cli.config",
)
DEFAULT_SOCKET = "/run/forgeoned/control.sock"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forgeonectl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"forgeonectl {__version__}")
    parser.add_argument(
        "--socket", default=DEFAULT_SOCKET, help="control socket of the daemon (%(default)s)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ForgeonedError as exc:
        print(f"forgeonectl: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
