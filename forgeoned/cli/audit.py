"""forgeonectl ``audit export``, ``audit verify`` and ``compliance report``, served by the
daemon from its audit log (the report is built daemon-side by :mod:`forgeoned.core.compliance`).

``--since`` takes Unix seconds, an ISO-8601 time (naive = UTC) or a relative age such as
``90s``, ``15m``, ``2h``, ``7d``. ``audit verify`` exits 0 only when the chain is intact and
otherwise 9, naming the first bad sequence number and why. ``audit verify --dir DIR --key PUB``
checks a copy of the audit directory on an auditor's machine: no daemon, no state directory,
only the files and the pinned checkpoint public key.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli import audit_otlp
from forgeoned.cli.audit_offline import cmd_pin_key, verify_offline
from forgeoned.cli.exitcodes import AUDIT_BROKEN, OK
from forgeoned.cli.output import write_lines, write_out
from forgeoned.core.audit_export import csv_lines, json_lines
from forgeoned.core.timespec import parse_time
from forgeoned.errors import AuditError, BadRequestError, UnreachableError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``audit export`` and ``audit verify`` to ``sub``."""
    audit = sub.add_parser("audit", help="read and check the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = audit_sub.add_parser("export", help="print audit entries")
    p.add_argument(
        "--format",
        choices=("json", "csv", "ocsf"),
        default="json",
        help="json: an array of the stored entries; csv: flat columns; "
        "ocsf: OCSF 1.8.0 events, one JSON object per line",
    )
    p.add_argument("--since", help="Unix seconds, ISO-8601, or an age like 2h / 7d")
    p.set_defaults(func=cmd_export)
    p = audit_sub.add_parser(
        "follow", help="print audit entries as they are written (for shippers); never ends"
    )
    p.add_argument(
        "--format",
        choices=("json", "ocsf"),
        default="json",
        help="json: the entries as stored; ocsf: OCSF 1.8.0 events; one per line",
    )
    p.add_argument(
        "--from-seq",
        type=int,
        metavar="N",
        help="start at entry N (the first one not yet acknowledged); default: the next entry",
    )
    p.add_argument(
        "--calls",
        action="store_true",
        help="also each plugin call, live (plugin.call lines without a seq: not resumable; "
        "the plugin.calls summaries are the durable record)",
    )
    p.set_defaults(func=cmd_follow)
    p = audit_sub.add_parser("verify", help="check the hash chain; exit 0 only if intact")
    p.add_argument("--json", action="store_true", help="print the full verdict as JSON")
    p.add_argument(
        "--dir", type=Path, help="verify a copy of the audit directory offline (no daemon)"
    )
    p.add_argument(
        "--key",
        type=Path,
        help="with --dir: the pinned checkpoint public key (/etc/forgeoned/audit-checkpoint.pub)",
    )
    p.add_argument(
        "--state",
        type=Path,
        help="with --dir: a copy of the daemon's state.json, to check the log against its anchor",
    )
    p.set_defaults(func=cmd_verify)
    p = audit_sub.add_parser(
        "accept-gap",
        help="accept an audit.gap after looking into it: anchor the log where it is now",
    )
    p.set_defaults(func=cmd_accept_gap)
    audit_otlp.register(audit_sub)
    p = audit_sub.add_parser(
        "rotate-key",
        help="admin: hand the checkpoint key over to a new one (signed by the old key)",
    )
    p.set_defaults(func=cmd_rotate_key)
    p = audit_sub.add_parser(
        "pin-key", help="copy the audit checkpoint public key out of the state directory, once"
    )
    p.add_argument("--dir", type=Path, required=True, help="the audit directory")
    p.add_argument("--out", type=Path, required=True, help="where the pinned copy is kept")
    p.set_defaults(func=cmd_pin_key)

    compliance = sub.add_parser("compliance", help="compliance evidence from the audit log")
    compliance_sub = compliance.add_subparsers(
        dest="compliance_command", required=True, metavar="ACTION"
    )
    p = compliance_sub.add_parser("report", help="print the compliance report")
    p.add_argument("--format", choices=("md", "json"), default="md")
    p.add_argument("--since", help="Unix seconds, ISO-8601, or an age like 2h / 30d")
    p.set_defaults(func=cmd_compliance)


def cmd_export(args: argparse.Namespace) -> int:
    since = parse_time(args.since, time.time()) if args.since else None
    with ControlClient(args.socket) as client:
        if args.format == "ocsf":
            write_lines(client.audit_lines("ocsf", since))
            return OK
        entries = (json.loads(line) for line in client.audit_lines("ndjson", since))
        chunks = csv_lines(entries) if args.format == "csv" else json_lines(entries)
        write_lines(line.encode() for line in chunks)
    return OK


def cmd_follow(args: argparse.Namespace) -> int:
    """Copy the follow stream to stdout line by line, flushed, so a shipper reading the pipe
    sees each entry at once. When it ends, say which seq to resume from (live call records,
    with ``--calls``, have no seq and do not move it)."""
    if args.from_seq is not None and args.from_seq < 1:
        raise BadRequestError(f"--from-seq must be at least 1, not {args.from_seq}")
    next_seq = args.from_seq
    out = sys.stdout.buffer
    with ControlClient(args.socket, timeout=None) as client:
        try:
            for line in client.audit_follow(args.format, args.from_seq, calls=args.calls):
                item = json.loads(line)
                if "error" in item:
                    error = item["error"]
                    raise AuditError(
                        f"{error.get('message')} (resume with --from-seq "
                        f"{error.get('resume_from_seq')})"
                    )
                seq = item["metadata"].get("sequence") if args.format == "ocsf" else item.get("seq")
                if seq is not None:  # a live call record has none
                    next_seq = int(seq) + 1
                out.write(line)
                out.flush()
        except BrokenPipeError:
            return OK
        except UnreachableError as exc:
            where = f"--from-seq {next_seq}" if next_seq is not None else "--from-seq"
            raise UnreachableError(f"{exc}; resume with {where}") from exc
    return OK


def cmd_accept_gap(args: argparse.Namespace) -> int:
    with ControlClient(args.socket) as client:
        answer = client.audit_accept_gap()
    gap = answer.get("accepted") or {}
    anchor = answer.get("anchor") or {}
    print(
        f"accepted the audit.gap at entry {gap.get('seq')} ({gap.get('kind')}); the log is "
        f"anchored at entry {anchor.get('seq')}"
    )
    return OK


def cmd_rotate_key(args: argparse.Namespace) -> int:
    with ControlClient(args.socket) as client:
        answer = client.audit_rotate_key()
    print(
        f"the audit checkpoint key {answer.get('old_key')} handed over to "
        f"{answer.get('new_key')} at entry {answer.get('seq')} (signed by the old key); keep "
        "the pinned key: verification follows the handover"
    )
    return OK


def cmd_compliance(args: argparse.Namespace) -> int:
    since = parse_time(args.since, time.time()) if args.since else None
    with ControlClient(args.socket) as client:
        text = client.compliance(since, args.format)
    write_out(text)
    return OK


def cmd_verify(args: argparse.Namespace) -> int:
    if args.dir is not None:
        verdict = verify_offline(args.dir, args.key, args.state)
    elif args.key is not None or args.state is not None:
        raise AuditError("--key and --state need --dir: the daemon verifies with its own")
    else:
        with ControlClient(args.socket) as client:
            verdict = client.audit_verify()
    if args.json:
        print(json.dumps(verdict, sort_keys=True))
    if verdict.get("ok"):
        if not args.json:
            print(f"audit chain intact ({verdict.get('entries', 0)} entries)")
            if gaps := verdict.get("gaps"):
                seqs = ", ".join(str(seq) for seq in gaps)
                print(
                    f"{len(gaps)} recorded gap(s) at seq {seqs}: records refused or lost "
                    "while the log could not be written (see audit export)"
                )
        return OK
    print(
        f"forgeonectl: audit chain broken at seq {verdict.get('first_bad_seq')}: "
        f"{verdict.get('why') or 'unknown reason'}",
        file=sys.stderr,
    )
    return AUDIT_BROKEN
