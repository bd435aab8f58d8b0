"""Retention: old audit files archived or removed by policy, behind a signed base.

``[audit] retain_files = N`` keeps the N newest log files (the one being written included);
when a rotation makes one more, the oldest are taken away: moved to ``[audit] archive_dir``
if set, else removed. Before anything is taken away :func:`take_away` writes ``base.json``
(:mod:`forgeoned.core.audit_base`: the seq and hash of the last entry taken away, every key
handover so far, signed by the checkpoint key), so that verification, in the daemon and
offline (``forgeonectl audit verify --dir``), starts from there instead of seq 1. The log
records it as ``audit.archived``. A crash between the base and the removal leaves files the
base already covers: verification skips them, the next rotation takes them away.

``handovers.json`` keeps every checkpoint-key handover (``audit.key_rotated``) in order; each
is signed by the key before it, so the file needs no protection of its own, and a base copies
them so that they outlive the files that carried them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from forgeoned.adapters.audit.files import BASE_FILE, log_files, read_base, tail
from forgeoned.adapters.files.atomic import atomic_write, fsync_dir
from forgeoned.core.audit_base import Base, Handover, base_message
from forgeoned.core.events import EventName
from forgeoned.errors import AuditError

HANDOVERS_FILE: Final = "handovers.json"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep_files: int = 0  # 0: keep every file
    archive_dir: Path | None = None  # None: remove instead of archiving

    def due(self, directory: Path) -> list[Path]:
        """The oldest files beyond the ``keep_files`` newest (never the last one)."""
        if self.keep_files <= 0:
            return []
        files = log_files(directory)
        return files[: max(0, len(files) - max(self.keep_files, 1))]


def read_handovers(directory: Path) -> list[Handover]:
    try:
        raw = json.loads((directory / HANDOVERS_FILE).read_bytes())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise AuditError(f"{directory / HANDOVERS_FILE} is unreadable: {exc}") from exc
    return [Handover.from_dict(h) for h in raw]


def add_handover(directory: Path, handover: Handover) -> None:
    known = [h for h in read_handovers(directory) if h.seq != handover.seq]
    data = json.dumps([h.to_dict() for h in [*known, handover]], sort_keys=True).encode()
    atomic_write(directory / HANDOVERS_FILE, data, mode=0o644)


class Signer(Protocol):
    """The checkpoint key in force (:class:`~forgeoned.adapters.audit.signer.CheckpointSigner`)."""

    @property
    def public_hex(self) -> str: ...

    def sign(self, message: bytes) -> str: ...


def take_away(
    policy: RetentionPolicy, directory: Path, files: list[Path], key: Signer
) -> dict[str, Any]:
    """Write the base covering ``files``, then archive or remove them; the ``audit.archived``
    entry's fields. AuditError (nothing taken away) if the base cannot be written."""
    last = _last_entry(files[-1])
    first = _first_entry(files[0])
    seq, digest = int(last["seq"]), str(last["hash"])
    try:
        before = read_base(directory)
    except ValueError:
        before = None
    names = tuple(p.name for p in files)
    to = str(policy.archive_dir) if policy.archive_dir is not None else ""
    base = Base(
        seq, digest, key.public_hex, key.sign(base_message(seq, digest, key.public_hex)),
        tuple(read_handovers(directory)), (before.files if before else ()) + names, to,
    )  # fmt: skip
    try:
        atomic_write(directory / BASE_FILE, base.to_json(), mode=0o644)
        for path in files:
            if policy.archive_dir is not None:
                _archive(path, policy.archive_dir)
            path.unlink()
        fsync_dir(directory)
    except OSError as exc:
        raise AuditError(f"audit retention: cannot take {names[0]}… away: {exc}") from exc
    verb = f"archived to {to}" if to else "removed"
    return {
        "event": EventName.AUDIT_ARCHIVED.label,
        "actor": "forgeoned",
        "reason": "archived" if to else "removed",
        "message": f"{len(files)} audit file(s) {verb} by the retention policy: entries "
        f"{first.get('seq')}..{seq}; verification starts after entry {seq}",
        "details": {"files": list(names), "first_seq": first.get("seq"), "last_seq": seq,
                    "last_hash": digest, "archive_dir": to or None,
                    "keep_files": policy.keep_files},
    }  # fmt: skip


def _archive(path: Path, archive_dir: Path) -> None:
    archive_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = archive_dir / path.name
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(path, partial)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(target)
    fsync_dir(archive_dir)


def _last_entry(path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(tail(path)[1])
    return entry


def _first_entry(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        entry: dict[str, Any] = json.loads(handle.readline())
    return entry
