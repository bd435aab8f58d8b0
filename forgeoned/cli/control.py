"""forgeonectl commands that drive the daemon over its control socket.

``status``, ``show``, ``invoke``, ``pause``/``resume``/``restart``/``reset``, ``retry``,
``install`` (exit 0 only when the uploaded sha256 runs), ``remove``, ``allow-downgrade``,
``reload`` (blocks until the reload is done: systemd's ``ExecReload`` relies on that) and
``whoami``. ``completion`` lives in
:mod:`forgeoned.cli.completion` and is registered from here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli import completion
from forgeoned.cli.artifacts import read_file
from forgeoned.cli.exitcodes import FAILURE, OK
from forgeoned.core.attestation import SUFFIX as ATTESTATION_SUFFIX
from forgeoned.core.control_config import MAX_BODY_BYTES
from forgeoned.core.ports import INSTALL_WAIT_MAX_S, INSTALL_WAIT_S
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.errors import ApplicationError, ArtifactTooLargeError, ForgeonedError

MAX_SIGNATURE_BYTES = 8192  # a detached signature goes base64 in a request header


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's commands to ``sub``."""
    p = sub.add_parser("status", help="list plugins with version, state and sha256")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--all", action="store_true", help="also the files in plugins.d refused now, and why"
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("show", help="everything about one plugin")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

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


def _client(args: argparse.Namespace, wait_s: float = 0.0) -> ControlClient:
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


def write_out(data: bytes) -> None:
    """Write bytes to stdout (a reader that went away is handled in ``forgeoned.cli.main``)."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write_lines(chunks: Iterable[bytes]) -> None:
    """Write chunks to stdout as they come (a long export is never held whole)."""
    out = sys.stdout.buffer
    try:
        for data in chunks:
            out.write(data)
        out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """A plain aligned text table with upper-case headers."""
    cells = [[c.upper() for c in columns]] + [
        [str(row.get(c, "")) for c in columns] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def note(entry: dict[str, Any]) -> str:
    """What is wrong with a plugin, in a few words (the ``status`` table's NOTE column)."""
    quarantine = entry.get("quarantine")
    if quarantine:
        return f"quarantined: {quarantine['message']}"
    for cand in entry.get("candidates", []):
        status = str(cand["status"]).replace("_", " ")
        reason = f" ({cand['reason']})" if cand.get("reason") else ""
        return f"{cand['version']} {status}{reason}"
    return ""


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        plugins = client.list_plugins()
        rejected = client.rejected_files() if args.all else []
    if args.json:
        doc: dict[str, Any] = {"plugins": plugins}
        if args.all:
            doc["rejected"] = rejected
        print(json.dumps(doc))
        return OK
    if not plugins:
        print("no plugins")
    else:
        short = [{**p, "sha256": str(p["sha256"])[:16], "note": note(p)} for p in plugins]
        columns = ("name", "version", "state", "sha256")
        print(table(short, (*columns, "note") if any(p["note"] for p in short) else columns))
    if args.all:
        print(f"\nrejected files in plugins.d: {len(rejected) or 'none'}")
        if rejected:
            rows = [{**r, "plugin": _claimed(r), "why": r["message"]} for r in rejected]
            print(table(rows, ("file", "plugin", "reason", "why")))
    return OK


def _claimed(rejection: dict[str, Any]) -> str:
    """``hello 1.0.0``, ``hello 1.0.0?`` (named by a manifest nobody vouched for) or ``-``."""
    name = " ".join(str(rejection[k]) for k in ("plugin", "version") if rejection.get(k))
    mark = "?" if rejection.get("manifest") == "unverified" else ""
    return f"{name}{mark}" if name else "-"


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.show(args.name)
    if args.json:
        _print_json(info)
        return OK
    for key in ("name", "version", "state", "sha256", "instances", "memory_bytes"):
        print(field(key, info.get(key)))
    if info.get("last_error"):
        print(field("last_error", f"{info['last_error']} [{info.get('last_error_code')}] "
                                  f"at {info.get('last_error_at')}"))  # fmt: skip
    else:
        print(field("last_error", "-"))
    if quarantine := info.get("quarantine"):
        last = quarantine["last_error"] or "-"
        print(field("quarantine", f"{quarantine['message']} ({quarantine['reason']}) at "
                    f"{quarantine['at']}; last error: {last}"))  # fmt: skip
    for cand in info.get("candidates", []):
        when = f" at {cand['at']}" if cand.get("at") else ""
        why = f" [{cand['reason']}] {cand['message']}" if cand.get("reason") else ""
        print(field("candidate", f"{cand['version']} {cand['status']}{when}{why}"))
    print(field("signers", ", ".join(info.get("signers", [])) or "-"))
    limits = info.get("limits", {})
    print(field("limits", ", ".join(f"{k}={v}" for k, v in sorted(limits.items())) or "-"))
    caps = info.get("capabilities", {})
    print(field("capabilities", describe_capabilities(caps)))
    print(field("secrets", ", ".join(caps.get("secrets", [])) or "-"))
    counters = info.get("counters", {})
    for row in counters.get("calls", []):
        print(field("calls", f"{row['export']} {row['outcome']} = {row['count']}"))
    for key in ("restarts", "fuel_consumed"):
        print(field(key, counters.get(key, 0)))
    return OK


def describe_capabilities(caps: dict[str, Any]) -> str:
    """``log, clock, env=TZ, kv=65536 bytes`` (the secrets get a line of their own)."""
    words = [name for name in ("log", "clock", "random") if caps.get(name)]
    if caps.get("env"):
        words.append(f"env={','.join(caps['env'])}")
    if isinstance(caps.get("kv"), dict):
        words.append(f"kv={caps['kv'].get('quota_bytes')} bytes")
    return ", ".join(words) or "-"


SHOW_KEY_WIDTH: Final = 16  # the longest key ("fuel_consumed:") plus at least one space


def field(key: str, value: object) -> str:
    """One ``key: value`` line of ``show``, values aligned in one column."""
    return f"{key + ':':<{SHOW_KEY_WIDTH}}{value}"


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
    with _client(args, args.wait or 0.0) as client:
        try:
            out = client.invoke(args.name, data, args.wait, args.fn)
        except ApplicationError as exc:
            write_out(exc.output)  # the plugin's answer; the status goes to stderr and $?
            raise
    write_out(out)
    return OK


def cmd_action(args: argparse.Namespace) -> int:
    with _client(args) as client:
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
    with _client(args, wait + 60) as client:
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
    with _client(args) as client:
        client.remove(args.name)
    print(f"{args.name}: removed")
    return OK


def cmd_allow_downgrade(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.allow_downgrade(args.name, args.version)
    print(f"{args.name}: downgrade to {args.version} allowed")
    return OK


def cmd_reload(args: argparse.Namespace) -> int:
    with _client(args) as client:
        report = client.reload()
    if args.json:
        _print_json(report)
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
    with _client(args) as client:
        _print_json(client.whoami())
    return OK
