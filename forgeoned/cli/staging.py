"""forgeonectl ``promote NAME --key KEY`` and ``review NAME --note TEXT``.

``promote`` asks a ``mode = "staging"`` daemon for what it observed of NAME's running version
(calls, faults, fuel, peak memory, host calls, time in staging) and, unless the plugin
faulted or ran less than the daemon's ``[staging]`` minimums, signs an in-toto Statement v1
binding that sha256 to the evidence (DSSE, Ed25519; the key never leaves this process) and
writes ``NAME.wasm.intoto.json`` (``-o``). A production daemon with ``require_staging`` loads
the artifact only with it beside the module (``install`` sends the one beside FILE.wasm).

``review`` records ``plugin.reviewed`` (who, version, note); the plugin's next review is due
``review_interval_days`` later.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.crypto.attest import sign_attestation
from forgeoned.adapters.crypto.keys import load_secret_key
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.cli.exitcodes import OK
from forgeoned.core.attestation import SUFFIX
from forgeoned.errors import StagingError, StagingReason

DAY_S = 86400.0
CLIENT_TIMEOUT_S = 60.0


def cmd_promote(args: argparse.Namespace) -> int:
    key = load_secret_key(Path(args.key))
    with ControlClient(args.socket, timeout=CLIENT_TIMEOUT_S) as client:
        evidence = client.evidence(args.name)
    refusal = evidence.get("refusal")
    if refusal is not None:
        need = evidence.get("required", {})
        raise StagingError(
            f"{args.name} {evidence.get('version')}: not promoted: {evidence.get('faults')} "
            f"fault(s), {evidence.get('failures')} failure(s), {evidence.get('calls')} call(s) "
            f"in {evidence.get('duration_s')} s "
            f"(staging requires no fault, {need.get('min_calls')} call(s), "
            f"{need.get('min_seconds')} s)",
            StagingReason(refusal),
        )
    days = args.valid_days or evidence.get("required", {}).get("valid_days", 30.0)
    expires = time.time() + float(days) * DAY_S
    envelope = sign_attestation(
        key, args.name, str(evidence["version"]), str(evidence["sha256"]), evidence, expires
    )
    out = Path(args.output or f"{args.name}.wasm{SUFFIX}")
    atomic_write(out, envelope, mode=0o644)
    print(f"promoted {args.name} {evidence['version']} sha256={str(evidence['sha256'])[:16]}: "
          f"{evidence['calls']} call(s), 0 faults, {evidence['duration_s']} s in staging; "
          f"attestation {out}")  # fmt: skip
    return OK


def cmd_review(args: argparse.Namespace) -> int:
    with ControlClient(args.socket, timeout=CLIENT_TIMEOUT_S) as client:
        answer = client.review(args.name, args.note)
    print(f"reviewed {answer['plugin']} {answer['version']}; next review due {answer['next_due']}")
    return OK


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("promote", help="sign a staging attestation of NAME (mode = staging)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--key", required=True, metavar="KEY", help="attester's secret key")
    p.add_argument("-o", "--output", metavar="FILE", help="(default: NAME.wasm.intoto.json)")
    p.add_argument(
        "--valid-days", type=float, metavar="DAYS",
        help="how long the attestation is valid (default: the daemon's [staging] valid_days)",
    )  # fmt: skip
    p.set_defaults(func=cmd_promote)
    r = sub.add_parser("review", help="record that NAME was reviewed (plugin.reviewed)")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--note", required=True, metavar="TEXT", help="what was reviewed")
    r.set_defaults(func=cmd_review)
