"""forgeonectl audit commands that need no daemon: ``verify --dir`` and ``pin-key``.

The checkpoint public key is what makes a copy of the audit log checkable: the daemon signs
its checkpoints with the secret half, kept in the state directory. A copy of the public half
kept *outside* the state directory (``pin-key`` writes it once, as root, to
``/etc/forgeoned/audit-checkpoint.pub``; the daemon prints it in the journal when it creates
the key) is what an auditor verifies against: someone who replaces the whole audit directory,
key included, cannot produce checkpoints that verify with the pinned key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from forgeoned.adapters.audit.files import (
    entry_at,
    first_seq,
    last_seq,
    log_files,
    read_base,
    verify_directory,
)
from forgeoned.adapters.audit.key import check_signature, public_bytes, read_public
from forgeoned.adapters.audit.retention import read_handovers
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.cli.exitcodes import AUDIT_BROKEN, OK
from forgeoned.core.audit_anchor import Anchor, Found, compare
from forgeoned.core.audit_base import keys_through
from forgeoned.errors import AuditError


def verify_offline(
    directory: Path, key_file: Path | None, state_file: Path | None = None
) -> dict[str, Any]:
    """Verify the audit files in ``directory`` against ``key_file`` (default: the
    ``checkpoint.pub`` inside the directory, which only proves the copy is self-consistent)
    and, given the daemon's ``state.json``, against the anchor it keeps there."""
    try:
        if not log_files(directory):
            raise AuditError(f"no audit log files (audit-NNNNNN.jsonl) in {directory}")
        if key_file is None:
            key_file = directory / "checkpoint.pub"
            print(
                f"forgeonectl: warning: trusting {key_file} from the copy itself; pass --key "
                "with the pinned public key to also catch a replaced key",
                file=sys.stderr,
            )
        key = read_public(key_file)
        result = verify_directory(directory, key)
        anchor = _anchor(state_file) if state_file is not None else None
    except OSError as exc:
        raise AuditError(f"cannot read {exc.filename or directory}: {exc.strerror}") from exc
    if anchor is not None:
        at = entry_at(directory, anchor.seq)
        try:
            base = read_base(directory)
        except ValueError:
            base = None  # the verdict above names it
        found = Found(True, last_seq(directory), str(at["hash"]) if at else None,
                      _log_key(directory, key), first_seq(directory),
                      base.seq if base is not None else 0,
                      frozenset(h.old_key for h in read_handovers(directory)))  # fmt: skip
        gap = anchor.gap or compare(anchor, found)
        if gap is not None:
            why = f"audit.gap ({gap.kind.value}): {gap.message}"
            result = dataclasses.replace(
                result, ok=False, first_bad_seq=result.first_bad_seq or anchor.seq,
                why=f"{result.why}; and {why}" if result.why else why,
            )  # fmt: skip
    return result.to_dict()


def _anchor(state_file: Path) -> Anchor | None:
    try:
        raw = json.loads(state_file.read_bytes()).get("audit_anchor")
        return Anchor.from_dict(raw) if isinstance(raw, dict) else None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AuditError(f"{state_file} holds no readable audit anchor: {exc}") from exc


def _log_key(directory: Path, trusted: str) -> str:
    """The key the copy's signed head names (the trusted one when it cannot be read)."""
    try:
        return str(json.loads((directory / "head.json").read_bytes())["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return trusted


def cmd_pin_key(args: argparse.Namespace) -> int:
    """Write ``--out`` from ``--dir``/checkpoint.pub if it does not exist; never replace it."""
    try:
        current = read_public(args.dir / "checkpoint.pub")
    except OSError as exc:
        raise AuditError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    out: Path = args.out
    if not out.exists():
        atomic_write(out, public_bytes(current), mode=0o644)
        print(f"pinned audit checkpoint key {current} in {out}")
        return OK
    pinned = read_public(out)
    if pinned == current:
        print(f"audit checkpoint key {current} is the one pinned in {out}")
        return OK
    try:
        chain = keys_through(pinned, read_handovers(args.dir), check_signature)
    except (ValueError, AuditError):
        chain = []
    if current in {k for _, k in chain}:
        print(
            f"audit checkpoint key {current} was handed over to from the one pinned in {out} "
            f"({len(chain) - 1} signed handover(s)); the pinned key is kept: verification "
            "follows the handovers"
        )
        return OK
    print(
        f"forgeonectl: the audit checkpoint key in {args.dir} ({current}) is not the one "
        f"pinned in {out} ({pinned}): the audit directory was replaced or wiped; "
        "the pinned key is kept",
        file=sys.stderr,
    )
    return AUDIT_BROKEN
