"""forgeonectl: the command-line interface of forgeoned.

Each command group lives in its own module exposing ``register(subparsers)``; a command's
handler takes the parsed arguments and returns the process exit code. Every failure exits
non-zero with a one-line ``forgeonectl: reason`` on stderr (see ``forgeoned.cli.exitcodes``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from forgeoned import __version__
from forgeoned.cli.exitcodes import OK, exit_code_for
from forgeoned.errors import ForgeonedError

COMMAND_MODULES = (
    "forgeoned.cli.keys",
    "forgeoned.cli.artifacts",
    "forgeoned.cli.check",
    "forgeoned.cli.run",
    "forgeoned.cli.staging",
    "forgeoned.cli.status",
    "forgeoned.cli.control",
    "forgeoned.cli.audit",
    "forgeoned.cli.config",
    "forgeoned.cli.new",
    "forgeoned.cli.oci",
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
        try:
            code: int = args.func(args)
        finally:
            sys.stdout.flush()  # here, where a reader that went away can still be caught
    except BrokenPipeError:
        return _reader_gone()
    except ForgeonedError as exc:
        print(f"forgeonectl: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
    return code


def _reader_gone() -> int:
    """stdout's reader went away (``forgeonectl show x | head``): no traceback, no message,
    and nothing more for the interpreter to flush at exit (it would complain again)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return OK


if __name__ == "__main__":
    sys.exit(main())
