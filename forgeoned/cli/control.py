"""forgeonectl commands that act on the daemon over its control socket.

``invoke``, ``pause``/``resume``/``restart``/``reset``, ``retry``, ``install`` (exit 0 only
when the uploaded sha256 runs), ``remove``, ``allow-downgrade``, ``reload`` (blocks until the
reload is done: systemd's ``ExecReload`` relies on that) and ``whoami``; :func:`connect` is
the client every command that talks to the daemon opens. ``status`` and ``show`` live in
:mod:`forgeoned.cli.status`; ``completion`` lives in :mod:`forgeoned.cli.completion` and is
registered from here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli import completion
from forgeoned.cli.artifacts import read_file
from forgeoned.cli.exitcodes import FAILURE, OK
from forgeoned.cli.output import print_json, write_out
from forgeoned.core.attestation import SUFFIX as ATTESTATION_SUFFIX
from forgeoned.core.control_config import MAX_BODY_BYTES
from forgeoned.core.ports import INSTALL_WAIT_MAX_S, INSTALL_WAIT_S
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.errors import ApplicationError, ArtifactTooLargeError, ForgeonedError

MAX_SIGNATURE_BYTES = 8192  # a detached signature goes base64 in a request header


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's commands to ``sub``."""
    p = sub.add_parser(
        "invoke", help="call a plugin's handle export (or --fn FUNCTION); prints its output"
    )
    p.add_argument("name")
    p.add_argument(
        "--fn",
        metavar="FUNCTION",
        help="a named function the plugin's manifest lists (default: handle)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--input", help="input text (default: empty)")
    source.add_argument("--input-file", type=Path, help="read the input from a file ('-': stdin)")
    p.add_argument(
        "--wait",
        type=_seconds,
        metavar="SECONDS",
        help="if the plugin is paused, wait up to SECONDS for it to be resumed instead of "
        "failing at once (exit code 7); also bounds the wait for a busy or swapping plugin",
    )
    p.set_defaults(func=cmd_invoke)

    for verb, text in (
        ("pause", "pause a running plugin"),
        ("resume", "resume a paused plugin"),
        ("restart", "restart a plugin"),
        ("reset", "clear a quarantine and start the plugin's active version again"),
        ("retry", "let the rejected or rolled-back versions of a plugin try again"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.set_defaults(func=cmd_action, verb=verb)

    p = sub.add_parser(
        "install", help="upload a signed artifact into plugins.d; exit 0 only when it runs"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--sig", type=Path, help="its detached signature (FILE.wasm.sig)")
    p.add_argument(
        "--attestation", type=Path,
        help="its staging attestation (default: FILE.wasm.intoto.json beside it, if any)",
    )  # fmt: skip
    wait = p.add_mutually_exclusive_group()
    wait.add_argument(
        "--wait",
        type=float,
        default=INSTALL_WAIT_S,
        metavar="SECONDS",
        help="how long to wait for it to run (default %(default)g, at most 600)",
    )
    wait.add_argument("--no-wait", dest="wait", action="store_const", const=0.0, help="do not wait")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("remove", help="remove a plugin (its artifact leaves plugins.d)")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("allow-downgrade", help="allow one specific lower version of a plugin")
    p.add_argument("name")
    p.add_argument("version")
    p.set_defaults(func=cmd_allow_downgrade)

    p = sub.add_parser("reload", help="rescan plugins.d and the config; waits until done")
    p.add_argument("--json", action="store_true", help="print the daemon's full answer")
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("whoami", help="how the daemon sees you and what you may do")
    p.set_defaults(func=cmd_whoami)

    completion.register(sub)


def connect(args: argparse.Namespace, wait_s: float = 0.0) -> ControlClient:
    """A client of the daemon on ``--socket``; ``wait_s`` more than the usual timeout."""
    return ControlClient(args.socket, timeout=CLIENT_TIMEOUT_S + wait_s)


CLIENT_TIMEOUT_S: Final = 300.0
MAX_WAIT_S: Final = 3600.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds between 0 and {MAX_WAIT_S:g}")
    return value


def cmd_invoke(args: argparse.Namespace) -> int:
    if args.input_file is not None:
        if str(args.input_file) == "-":
            data = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
        else:
            data = read_file(args.input_file, MAX_BODY_BYTES)
        if len(data) > MAX_BODY_BYTES:
            raise ForgeonedError(f"input is over {MAX_BODY_BYTES} bytes")
    else:
        data = (args.input or "").encode()
    with connect(args, args.wait or 0.0) as client:
        try:
            out = client.invoke(args.name, data, args.wait, args.fn)
        except ApplicationError as exc:
            write_out(exc.output)  # the plugin's answer; the status goes to stderr and $?
            raise
    write_out(out)
    return OK


def cmd_action(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if args.verb == "retry":
            status = client.retry(args.name).get("status") or {}
            state = f": {status.get('version')} {status.get('state')}" if status else ""
            print(f"{args.name}: retry done{state}")
            return OK
        client.action(args.name, args.verb)
    print(f"{args.name}: {args.verb} done")
    return OK


def cmd_install(args: argparse.Namespace) -> int:
    path: Path = args.file
    data = read_file(path)
    if len(data) > MAX_MODULE_BYTES:  # read_file stops one byte past the cap
        raise ArtifactTooLargeError(f"{path} is over {MAX_MODULE_BYTES} bytes")
    detached = read_file(args.sig, MAX_SIGNATURE_BYTES) if args.sig is not None else None
    if detached is not None and len(detached) > MAX_SIGNATURE_BYTES:
        raise ArtifactTooLargeError(f"{args.sig} is over {MAX_SIGNATURE_BYTES} bytes")
    beside = Path(f"{path}{ATTESTATION_SUFFIX}")
    attest_path = args.attestation or (beside if beside.is_file() else None)
    attestation = read_file(attest_path, MAX_SIGNATURE_BYTES) if attest_path else None
    if attestation is not None and len(attestation) > MAX_SIGNATURE_BYTES:
        raise ArtifactTooLargeError(f"{attest_path} is over {MAX_SIGNATURE_BYTES} bytes")
    wait = float(args.wait)
    if not 0 <= wait <= INSTALL_WAIT_MAX_S:
        raise ForgeonedError(f"--wait takes 0 to {INSTALL_WAIT_MAX_S:g} seconds")
    with connect(args, wait + 60) as client:
        result = client.install(data, path.name, detached, wait, attestation)
    installed = result.get("installed")
    if installed:
        print(
            f"installed {installed['name']} {installed['version']} ({installed['state']}), "
            f"sha256 {str(installed['sha256'])[:16]}"
        )
        return OK
    cand = result.get("candidate") or {}
    what = f"{cand.get('name')} {cand.get('version')}"
    if wait <= 0:
        print(f"{what} handed to the daemon (not waited for: forgeonectl show {cand.get('name')})")
        return OK
    print(
        f"forgeonectl: {what} is not running yet after {wait:g} s "
        f"(forgeonectl show {cand.get('name')})",
        file=sys.stderr,
    )
    return FAILURE


def cmd_remove(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.remove(args.name)
    print(f"{args.name}: removed")
    return OK


def cmd_allow_downgrade(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.allow_downgrade(args.name, args.version)
    print(f"{args.name}: downgrade to {args.version} allowed")
    return OK


def cmd_reload(args: argparse.Namespace) -> int:
    with connect(args) as client:
        report = client.reload()
    if args.json:
        print_json(report)
        return OK
    print("reloaded")
    print(f"applied: {', '.join(report.get('applied', [])) or 'no changed keys'}")
    if report.get("restarted"):
        print(f"restarted for new capabilities: {', '.join(report['restarted'])}")
    if report.get("restart_required"):
        waiting = ", ".join(report["restart_required"])
        print(f"changed, applied only on restart (systemctl restart forgeoned): {waiting}")
    added = set(report.get("keys_added", []))
    keys = [
        f"{k['name']} {k['fingerprint']}{' (new)' if k['name'] in added else ''}"
        for k in report.get("trusted_keys", [])
    ]
    print(f"trusted keys: {', '.join(keys) or 'none'}")
    if report.get("keys_removed"):
        print(f"no longer trusted: {', '.join(report['keys_removed'])}")
    return OK


def cmd_whoami(args: argparse.Namespace) -> int:
    with connect(args) as client:
        print_json(client.whoami())
    return OK
