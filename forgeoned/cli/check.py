"""forgeonectl ``check FILE [--config PATH] [--json]`` and ``verify --trust DIR FILE``: the
daemon's own verdict on an artifact, without a daemon and without running it.

Both call :func:`forgeoned.daemon.artifact_check.check_artifact` — the daemon's verifier,
rollback rule, compile worker and ABI validation, capability grant — so neither can say
"accepted" for a module the daemon refuses:

* ``check`` reads the daemon's config as a start would (``config check``: StrictModes on the
  config and trust store; then ``[trust]``, ``[limits]``, ``[capabilities]``, ``[staging]``,
  the mode) and its state directory (the rollback floors),
  prints every finding with its stable code (``--json``: one object), exit 0 only when the
  daemon would accept the artifact, 3 when it would refuse it;
* ``verify`` is the same check for the signature's author: production rules, the trust store
  given by ``--trust``; with ``--config`` also that config's ceilings, policy, staging rule and
  rollback floors (without it they are not known, and it says so). It exits non-zero for an
  ABI-invalid module as the daemon refuses it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from forgeoned.adapters.crypto.keys import load_trust_dir
from forgeoned.adapters.files.attestations import beside
from forgeoned.cli.artifacts import read_file
from forgeoned.cli.exitcodes import OK, REJECTED
from forgeoned.core.trust import Mode, TrustPolicy
from forgeoned.daemon.artifact_check import CheckReport, check_artifact
from forgeoned.daemon.check import DEFAULT_CONFIG, check_config
from forgeoned.daemon.config import Config
from forgeoned.daemon.config_file import load_config
from forgeoned.errors import error_from_code


def _report(
    config: Config, file: str, signature: str | None, rollback: bool,
    trust: TrustPolicy | None = None,
) -> CheckReport:  # fmt: skip
    trust = trust or load_trust_dir(config.trust_dir, config.trust)
    path = Path(file)
    sig_path = Path(signature) if signature else Path(f"{path}.sig")
    detached = read_file(sig_path) if signature or sig_path.is_file() else None
    return check_artifact(
        config, trust, read_file(path), detached, path=file, rollback=rollback,
        attestations=beside(path),
    )  # fmt: skip


def cmd_check(args: argparse.Namespace) -> int:
    # the config, trust store and credentials as a start would load them (StrictModes too)
    daemon = check_config(Path(args.config))
    report = _report(daemon.config, args.file, args.signature, True, daemon.trust)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print("\n".join(report.lines()))
    return OK if report.accepted else REJECTED


def cmd_verify(args: argparse.Namespace) -> int:
    if args.config is not None:
        config = replace(load_config(Path(args.config)), trust_dir=Path(args.trust))
    else:
        config = Config(path=Path("-"), trust_dir=Path(args.trust))
    config = replace(config, mode=Mode.PRODUCTION)  # verify never tolerates development mode
    report = _report(config, args.file, args.signature, args.config is not None)
    rejected = next((f for f in report.findings if f.code == report.reason), None)
    if rejected is not None:
        raise error_from_code(rejected.code, rejected.message)
    floor = "rollback floor checked" if args.config else "rollback floor not checked (--config)"
    print(
        f"trusted and loadable: {report.name} {report.version} sha256={report.sha256} "
        f"signed by {', '.join(report.signers)}; ABI v1 valid; {floor}"
    )
    for f in report.findings:
        print(f"{f.severity.value} {f.code}: {f.message}")
    return OK


def register(sub: argparse._SubParsersAction[Any]) -> None:
    check = sub.add_parser(
        "check", help="the verdict the daemon would give FILE, without running it"
    )
    check.add_argument("file", metavar="FILE.wasm")
    check.add_argument("--config", default=str(DEFAULT_CONFIG), help="daemon config (%(default)s)")
    check.add_argument("--signature", metavar="SIG", help="detached signature (FILE.sig)")
    check.add_argument("--json", action="store_true", help="one JSON object")
    check.set_defaults(func=cmd_check)

    verify = sub.add_parser(
        "verify", help="exit 0 only if FILE is trusted and loadable (production rules)"
    )
    verify.add_argument("--trust", required=True, metavar="DIR", help="trusted public keys")
    verify.add_argument(
        "--config", metavar="TOML",
        help="daemon config: its [trust], [limits], [capabilities], [staging] and state_dir",
    )  # fmt: skip
    verify.add_argument("--signature", metavar="SIG", help="detached signature (FILE.sig)")
    verify.add_argument("file", metavar="FILE.wasm")
    verify.set_defaults(func=cmd_verify)
