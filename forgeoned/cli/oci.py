"""forgeonectl commands for OCI delivery: ``push`` (offline) and ``sources`` / ``pull`` (daemon).

``push FILE oci://HOST/REPO:TAG`` first runs the check ``verify`` runs
(:func:`~forgeoned.daemon.artifact_check.check_artifact`, production rules: signature, trust,
the manifest, the ABI exports and imports compiled in the limited worker; with ``--config``
also that daemon's ceilings and ``require_staging``). A module the daemon would refuse is
refused here, exit 3, nothing uploaded. Then it publishes it in the Wasm OCI layout
(:mod:`forgeoned.core.oci`), with its staging attestation (``FILE.intoto.json`` beside it, or
``--attestation``) as a second layer, and prints the manifest digest, which is what a pinned
source (``oci://HOST/REPO@sha256:…``) names.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.crypto.keys import load_trust_dir
from forgeoned.adapters.files.attestations import beside
from forgeoned.adapters.oci.credentials import read_credentials
from forgeoned.adapters.oci.registry import Connection, RegistryClient
from forgeoned.cli.artifacts import read_file
from forgeoned.cli.exitcodes import OK
from forgeoned.core.attestation import MAX_ENVELOPE_BYTES
from forgeoned.core.oci import parse_reference, plan_push
from forgeoned.core.trust import Mode
from forgeoned.daemon.artifact_check import check_artifact
from forgeoned.daemon.config import Config
from forgeoned.daemon.config_file import load_config
from forgeoned.errors import BadRequestError, error_from_code

DEFAULT_TRUST = "/etc/forgeoned/trusted.d"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's commands to ``sub``."""
    p = sub.add_parser("push", help="publish a signed artifact to an OCI registry")
    p.add_argument("file", type=Path, metavar="FILE.wasm")
    p.add_argument("reference", metavar="oci://HOST/REPO:TAG")
    p.add_argument("--trust", default=DEFAULT_TRUST, metavar="DIR",
                   help="refuse FILE unless trusted by these keys (%(default)s)")  # fmt: skip
    p.add_argument("--config", metavar="TOML",
                   help="a daemon config: its [trust], [limits] and [staging] apply")  # fmt: skip
    p.add_argument("--attestation", type=Path, metavar="FILE",
                   help="staging attestation to publish with it (default: FILE.intoto.json "
                   "beside it, if any)")  # fmt: skip
    p.add_argument("--credentials", type=Path, metavar="FILE", help="one line USER:PASSWORD")
    p.add_argument("--plain-http", action="store_true", help="HTTP without TLS (a lab registry)")
    p.add_argument("--ca-file", metavar="PEM", help="CA bundle that signs the registry's cert")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("sources", help="the OCI sources the daemon follows, and their last sync")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("pull", help="sync one OCI source now; exit 0 only if it succeeded")
    p.add_argument("name", help="the source's name in [[sources]]")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_pull)


def cmd_push(args: argparse.Namespace) -> int:
    ref = parse_reference(args.reference)
    if ref.pinned:
        raise BadRequestError("push needs a tag (oci://HOST/REPO:TAG), not a digest")
    module = read_file(args.file)
    attestation = _attestation(args.file, args.attestation)
    if args.config is not None:
        config = replace(load_config(Path(args.config)), trust_dir=Path(args.trust))
    else:
        config = Config(path=Path("-"), trust_dir=Path(args.trust))
    config = replace(config, mode=Mode.PRODUCTION)  # as verify: never development rules
    trust = load_trust_dir(config.trust_dir, config.trust)
    report = check_artifact(
        config, trust, module, None, path=str(args.file), rollback=False,
        attestations=[attestation] if attestation is not None else [],
    )  # fmt: skip
    if not report.accepted:
        refused = next(f for f in report.findings if f.code == report.reason)
        raise error_from_code(refused.code, f"not pushed: {refused.message}")
    name, version = str(report.name), str(report.version)
    ids = [k.key_id.hex() for k in trust.keys if k.name in report.signers]
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = plan_push(module, name, version, ids, created, attestation)
    user = password = None
    if args.credentials is not None:
        user, password = read_credentials(args.credentials)
    conn = Connection(ref.host, args.plain_http, True, args.ca_file, args.timeout, user, password)
    with RegistryClient(conn) as client:
        digest = client.push(ref.repository, ref.tag or "latest", plan, module, attestation)
    with_att = " with its staging attestation" if attestation is not None else ""
    print(f"pushed {name} {version}{with_att} to {ref}")
    print(digest)
    return OK


def _attestation(file: Path, given: Path | None) -> bytes | None:
    """``--attestation``, else ``FILE.intoto.json`` beside FILE (None: there is none)."""
    if given is None:
        found = beside(file)
        return found[0] if found else None
    data = read_file(given, MAX_ENVELOPE_BYTES)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise BadRequestError(f"{given}: larger than {MAX_ENVELOPE_BYTES} bytes")
    return data


def cmd_sources(args: argparse.Namespace) -> int:
    with ControlClient(args.socket) as client:
        rows = client.sources()
    if args.json:
        print(json.dumps({"sources": rows}, indent=2, sort_keys=True))
        return OK
    for row in rows:
        print(_line(row))
    return OK


def cmd_pull(args: argparse.Namespace) -> int:
    with ControlClient(args.socket) as client:
        row = client.pull(args.name)
    if args.json:
        print(json.dumps(row, indent=2, sort_keys=True))
    else:
        print(_line(row))
    return OK


def _line(row: dict[str, Any]) -> str:
    what = f"{row.get('plugin') or '-'} {row.get('version') or '-'}"
    state = row.get("outcome") or "never synced"
    if state == "held":
        state = f"held: {row.get('message', '')}"
    elif row.get("reason"):
        state = f"{state} ({row['reason']}: {row.get('message', '')})"
    return f"{row['name']}\t{row['reference']}\t{what}\t{row.get('digest') or '-'}\t{state}"
