"""forgeonectl ``audit export``, ``audit verify`` and ``compliance report``, served by the
daemon from its audit log (the report is built daemon-side by :mod:`forgeoned.core.compliance`).

``--since`` takes Unix seconds, an ISO-8601 time (naive = UTC) or a relative age such as
``90s``, ``15m``, ``2h``, ``7d``. ``audit verify`` exits 0 only when the chain is intact and
otherwise 9, naming the first bad sequence number and why.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli.control import write_out
from forgeoned.cli.exitcodes import AUDIT_BROKEN, OK
from forgeoned.core.audit_export import export_csv, export_json
from forgeoned.core.timespec import parse_time


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``audit export`` and ``audit verify`` to ``sub``."""
    audit = sub.add_parser("audit", help="read and check the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = audit_sub.add_parser("export", help="print audit entries")
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p.add_argument("--since", help="Unix seconds, ISO-8601, or an age like 2h / 7d")
    p.set_defaults(func=cmd_export)
    p = audit_sub.add_parser("verify", help="check the hash chain; exit 0 only if intact")
    p.add_argument("--json", action="store_true", help="print the full verdict as JSON")
    p.set_defaults(func=cmd_verify)

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
        entries = client.audit_entries(since)
    text = export_csv(entries) if args.format == "csv" else export_json(entries)
    write_out(text.encode())
    return OK


def cmd_compliance(args: argparse.Namespace) -> int:
    since = parse_time(args.since, time.time()) if args.since else None
    with ControlClient(args.socket) as client:
        text = client.compliance(since, args.format)
    write_out(text)
    return OK


def cmd_verify(args: argparse.Namespace) -> int:
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
