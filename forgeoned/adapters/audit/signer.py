"""The audit log's signing side: the checkpoint key in force, the key verification trusts,
and handing the key over to a new one.

Verification trusts the *first* key (the one pinned at install): ``handovers.json`` lists the
handovers in order, each signed by the key before it, so the first one's ``old_key`` is that
root; with no handover the key in force is the root.

A rotation (:meth:`CheckpointSigner.begin_handover`, then :meth:`complete`) keeps the new key
as ``checkpoint.key.new`` until the ``audit.key_rotated`` entry is durable; the key file is
replaced only then. After a crash, :meth:`_settle` looks for that entry in the log:
found, the rotation is finished; not found, the pending key is dropped and the old key stays.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Final

from forgeoned.adapters.audit.files import BASE_FILE, log_files
from forgeoned.adapters.audit.key import CheckpointKey, pending_path, public_path
from forgeoned.adapters.audit.retention import HANDOVERS_FILE, add_handover, read_handovers
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.core import audit_chain
from forgeoned.core.audit_base import Handover
from forgeoned.core.audit_chain import SignedHead
from forgeoned.core.audit_walk import HANDOVER_EVENT, handover_message
from forgeoned.errors import AuditUnavailableError, StateError

log = logging.getLogger("forgeoned.audit")
_SELF: Final = "forgeoned"


class CheckpointSigner:
    """Not thread-safe: the audit log calls it under its own lock."""

    def __init__(self, directory: Path, key_path: Path) -> None:
        self.directory = directory
        self.key_path = key_path
        self._settle()
        self._key = CheckpointKey.load_or_create(key_path)
        handovers = read_handovers(directory)
        self.root_key = handovers[0].old_key if handovers else self._key.public_hex
        self._pending: CheckpointKey | None = None

    @property
    def public_hex(self) -> str:
        return self._key.public_hex

    def sign(self, message: bytes) -> str:
        return self._key.sign(message)

    def checkpoint_fields(self, covers_seq: int, covers_hash: str) -> dict[str, Any]:
        signature = self.sign(audit_chain.checkpoint_message(covers_seq, covers_hash))
        return {
            "event": audit_chain.CHECKPOINT_EVENT,
            "actor": _SELF,
            "details": {"covers_seq": covers_seq, "covers_hash": covers_hash,
                        "key": self.public_hex, "signature": signature},
        }  # fmt: skip

    def write_head(self, seq: int, digest: str) -> SignedHead:
        """Sign (seq, hash) of a checkpoint entry and keep it as ``head.json``."""
        signature = self.sign(audit_chain.checkpoint_message(seq, digest))
        head = SignedHead(seq, digest, self.public_hex, signature)
        try:
            atomic_write(self.directory / "head.json", audit_chain.canonical(head.to_dict()))
        except StateError as exc:
            raise AuditUnavailableError(f"cannot write the signed audit head: {exc}") from exc
        return head

    # --- handing the key over --------------------------------------------------------------

    def begin_handover(self, seq: int, prev: str, actor: str | None) -> dict[str, Any]:
        """A new key, kept pending; the fields of the handover entry at ``seq`` (after the
        entry whose hash is ``prev``), signed by the key in force."""
        new = CheckpointKey.generate()
        try:
            new.save(pending_path(self.key_path))
        except StateError as exc:
            _drop_pending(self.key_path)
            raise AuditUnavailableError(f"cannot keep the new checkpoint key: {exc}") from exc
        self._pending = new
        old = self.public_hex
        signature = self.sign(handover_message(seq, prev, new.public_hex))
        return {
            "event": HANDOVER_EVENT,
            "actor": actor or _SELF,
            "message": f"checkpoint key {old[:16]}… hands over to {new.public_hex[:16]}…",
            "details": {"old_key": old, "new_key": new.public_hex, "signature": signature},
        }

    def abort(self) -> None:
        """The handover entry could not be written: the key in force stays."""
        self._pending = None
        _drop_pending(self.key_path)

    def complete(self, entry: dict[str, Any]) -> None:
        """The handover ``entry`` is durable: the new key is the one in force from now on."""
        new, self._pending = self._pending, None
        assert new is not None, "no handover begun"
        handover = Handover.of_entry(entry)
        assert handover is not None
        add_handover(self.directory, handover)
        new.save(self.key_path)
        _drop_pending(self.key_path)
        self._key = new

    def orphaned(self, now: int) -> None:
        """A new chain: the retention base and key handovers of one that is gone are moved
        aside (``*-lost-TIME.json``, kept for an investigation); the key in force is the root."""
        self.root_key = self.public_hex
        for name in (BASE_FILE, HANDOVERS_FILE):
            path = self.directory / name
            with contextlib.suppress(FileNotFoundError):
                path.rename(path.with_name(f"{path.stem}-lost-{now}.json"))

    def _settle(self) -> None:
        pending = pending_path(self.key_path)
        if not pending.exists():
            return
        new = CheckpointKey.load_or_create(pending)
        entry = _handover_to(self.directory, new.public_hex)
        if entry is not None:
            handover = Handover.of_entry(entry)
            if handover is not None and handover.seq not in {
                h.seq for h in read_handovers(self.directory)
            }:
                add_handover(self.directory, handover)
            new.save(self.key_path)
            log.warning("audit: finished the checkpoint key rotation to %s", new.public_hex)
        else:
            log.warning("audit: dropped the key of a rotation that never wrote its handover")
        _drop_pending(self.key_path)


def _drop_pending(key_path: Path) -> None:
    pending = pending_path(key_path)
    pending.unlink(missing_ok=True)
    public_path(pending).unlink(missing_ok=True)


def _handover_to(directory: Path, new_key: str) -> dict[str, Any] | None:
    """The handover entry to ``new_key`` if it was written (newest files first; this runs
    only after a crash in a rotation)."""
    marker = new_key.encode()
    for path in reversed(log_files(directory)):
        with path.open("rb") as handle:
            for line in handle:
                if marker not in line or not line.endswith(b"\n"):
                    continue
                with contextlib.suppress(ValueError):
                    entry: dict[str, Any] = json.loads(line)
                    details = entry.get("details")
                    if (
                        entry.get("event") == HANDOVER_EVENT
                        and isinstance(details, dict)
                        and details.get("new_key") == new_key
                    ):
                        return entry
    return None
