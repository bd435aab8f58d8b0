"""The tamper-evident audit log: append-only, hash-chained JSON lines under ``STATE_DIR/audit/``.

Files are ``audit-000001.jsonl``, ``audit-000002.jsonl``, …; a new file starts when the
current one would pass ``rotate_bytes``, and its first entry chains to the previous file's
last one, so rotation never breaks the chain. Each ``record`` returns only once its line is
on disk (``fdatasync``; written by ``adapters/audit/writer.py``). A signed checkpoint is
written first (seq 1), every ``checkpoint_every`` entries, after ``checkpoint_interval_s``
and on ``close``; the latest one is also kept as ``head.json`` beside the log.

Old files may be archived or removed by a retention policy behind a signed base
(``adapters/audit/retention.py``); the checkpoint key may be rotated, the old key signing
the handover (:meth:`AuditLog.rotate_key`); the periodic check verifies incrementally
(``adapters/audit/verifier.py``).

A crash can leave a torn last line. On start it is detected, moved aside to
``torn-<seq>-<time>.bin`` and the truncation is itself recorded as ``audit.recovered``.
A write or sync the disk refuses raises :class:`~forgeoned.errors.AuditUnavailableError`
and leaves no partial line (what that means for the daemon: ``adapters/audit/trail.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forgeoned.adapters.audit.files import last_seq, read_entries
from forgeoned.adapters.audit.retention import RetentionPolicy, take_away
from forgeoned.adapters.audit.signer import CheckpointSigner
from forgeoned.adapters.audit.verifier import ChainVerifier, Snapshot
from forgeoned.adapters.audit.writer import ChainWriter
from forgeoned.core.audit_bounds import bound
from forgeoned.core.audit_chain import SignedHead, VerifyResult
from forgeoned.core.events import AuditEvent
from forgeoned.core.ports import Clock
from forgeoned.errors import AuditError

__all__ = ["AuditLog"]

log = logging.getLogger("forgeoned.audit")


class AuditLog:
    """Implements :class:`forgeoned.core.ports.AuditSink`; thread-safe."""

    def __init__(
        self,
        directory: Path,
        clock: Clock,
        *,
        rotate_bytes: int = 16 << 20,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 300.0,
        key_path: Path | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.directory = directory
        self.retention = retention or RetentionPolicy()
        self.verifier = ChainVerifier()
        self._clock = clock
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval_s
        self._internal: list[dict[str, Any]] = []
        self.last_verify: VerifyResult | None = None
        # The anchor's hooks (adapters/audit/anchor.py): told of each signed head, and
        # given each verdict to hold against the anchor.
        self.on_checkpoint: Callable[[SignedHead], None] | None = None
        self.anchor_check: Callable[[VerifyResult], VerifyResult] | None = None
        self.on_files_lost: Callable[[], None] | None = None  # before a new chain is anchored
        self.last_head: SignedHead | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise AuditError(f"cannot create {directory}: {exc.strerror or exc}") from exc
        self._signer = CheckpointSigner(directory, key_path or directory / "checkpoint.key")
        self._writer = writer = ChainWriter(directory, clock, rotate_bytes)
        self.started_empty = writer.started_empty  # no log file was there when it was opened
        if writer.started_empty:
            self._signer.orphaned(int(clock.wall()))
        writer.open()
        self._last_checkpoint = clock.monotonic()
        with writer.lock:
            if writer.seq == 0:
                self._checkpoint()
            if writer.torn is not None:
                self._internal.append(writer.append(writer.torn))
                self._checkpoint()
        if self.last_head is None:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                head = json.loads((directory / "head.json").read_bytes())
                self.last_head = SignedHead.from_dict(head)

    # --- writing ---------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> dict[str, Any]:
        """Append ``event``; returns the stored entry once it is durable, or raises
        (AuditUnavailableError when the disk refuses the write or the sync).

        Its strings are made printable and short first (:mod:`forgeoned.core.audit_bounds`)."""
        fields = bound(event.fields())
        writer = self._writer
        with writer.lock:
            if writer.fd >= 0 and os.fstat(writer.fd).st_nlink == 0:
                self._deleted_under_us()
            entry = writer.append(fields)
            if self._checkpoint_due():
                # The event itself is written; a failed checkpoint (counted in
                # write_failures) is retried with the next record, not blamed on this one.
                with contextlib.suppress(AuditError):
                    self._checkpoint()
            if writer.rotated:
                self._prune()
        writer.sync(entry["seq"])
        return entry

    def rotate_key(self, actor: str | None) -> dict[str, Any]:
        """Hand the checkpoint key over to a new one: a checkpoint under the old key, then an
        ``audit.key_rotated`` entry signed by the old key naming the new one, then a checkpoint
        under the new key. AuditUnavailableError (the old key stays) if it cannot be written."""
        writer = self._writer
        with writer.lock:
            if writer.since_checkpoint:
                self._checkpoint()
            old, seq = self.public_key, writer.seq + 1
            fields = self._signer.begin_handover(seq, writer.prev, actor)
            try:
                entry = writer.append(fields)
                writer.sync_written()
            except AuditError:
                self._signer.abort()
                raise
            self._internal.append(entry)
            self._signer.complete(entry)
            try:  # the handover stands; a checkpoint that fails now comes with a later record
                self._checkpoint()
            except AuditError as exc:
                log.error("audit: no checkpoint under the new key yet: %s", exc)  # noqa: TRY400
        log.warning("audit: the checkpoint key %s handed over to %s", old, self.public_key)
        return {"old_key": old, "new_key": self.public_key, "seq": seq}

    @property
    def public_key(self) -> str:
        """The checkpoint key in force (hex)."""
        return self._signer.public_hex

    @property
    def root_key(self) -> str:
        """The key verification trusts: the first one, every later one handed over from it."""
        return self._signer.root_key

    def checkpoint(self) -> None:
        """Write a signed checkpoint now if anything was recorded since the last one."""
        with self._writer.lock:
            if self._writer.since_checkpoint:
                self._checkpoint()

    def take_internal(self) -> list[dict[str, Any]]:
        """Entries the log wrote on its own (checkpoints, recoveries) since the last call."""
        with self._writer.lock:
            out, self._internal = self._internal, []
        return out

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def head_seq(self) -> int:
        with self._writer.lock:
            return self._writer.seq

    @property
    def write_failures(self) -> int:
        """Writes, syncs and head updates the disk refused."""
        return self._writer.write_failures

    def ends(self) -> tuple[int, int]:
        """``(last entry on disk, last entry written)``: the first is less when the files were
        cut under this log. Read under the lock, where no write is half done (a reader could
        take a half-written last line for the end of the file and look in the one before)."""
        with self._writer.lock:
            return last_seq(self.directory), self._writer.seq

    @property
    def durable_seq(self) -> int:
        """The last entry known to be on disk (what followers may be given)."""
        return self._writer.synced

    def wait_durable(self, beyond: int, timeout: float) -> int:
        """Wait (at most ``timeout`` s) until an entry after ``beyond`` is durable."""
        return self._writer.wait_durable(beyond, timeout)

    def close(self) -> None:
        """Checkpoint, sync and close; idempotent."""
        writer = self._writer
        with writer.sync_lock, writer.lock:  # the order writer.sync takes them in
            if writer.fd < 0:
                return
            try:
                if writer.since_checkpoint:
                    self._checkpoint()
                os.fdatasync(writer.fd)
            finally:
                writer.close_descriptors()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------

    def entries(self, since: float | None = None) -> Iterator[dict[str, Any]]:
        """Stored entries in order (``since``: epoch seconds, inclusive); skips unreadable lines."""
        yield from read_entries(self._snapshot().files, since)

    def verify(self, trusted_key: str | None = None, *, incremental: bool = False) -> VerifyResult:
        """Check the chain, its checkpoints and the signed head against the audit key: all of
        it (from seq 1 or the retention base), or with ``incremental`` from the last verified
        checkpoint on; then against the anchor."""
        snap = self._snapshot()
        key = trusted_key or self.root_key
        if key == self.root_key:
            result = self.verifier.verify(snap, key, incremental=incremental)
        else:
            result = ChainVerifier().verify(snap, key, incremental=False)
        if self.anchor_check is not None:
            result = self.anchor_check(result)
        self.last_verify = result
        return result

    def _snapshot(self) -> Snapshot:
        # Under the lock no write is half done, so every file ends at a line boundary
        # (unless something other than this log wrote to it: verify reports that).
        with self._writer.lock:
            return Snapshot.take(self.directory)

    # --- what the log writes on its own (under the writer's lock) --------------------------

    def _deleted_under_us(self) -> None:
        """The file being written was deleted: what goes there is lost to every reader. Go on
        in a new file: the same chain if older files are left (verification then names the
        entries that were lost), a new chain if none are (the anchor reports the gap)."""
        if self._writer.deleted_under_us():
            return
        if self.on_files_lost is not None:
            self.on_files_lost()
        self._signer.orphaned(int(self._clock.wall()))
        self._writer.restart_chain()
        self._checkpoint()

    def _checkpoint_due(self) -> bool:
        since = self._writer.since_checkpoint
        if since >= self._checkpoint_every:
            return True
        elapsed = self._clock.monotonic() - self._last_checkpoint
        return since > 0 and elapsed >= self._checkpoint_interval

    def _checkpoint(self) -> None:
        """Append a signed checkpoint over the current head; sync it; update head.json."""
        writer = self._writer
        entry = writer.append(self._signer.checkpoint_fields(writer.seq, writer.prev))
        writer.sync_written()
        try:
            head = self._signer.write_head(entry["seq"], entry["hash"])
        except AuditError:
            writer.write_failures += 1
            raise
        writer.since_checkpoint = 0
        self._last_checkpoint = self._clock.monotonic()
        self._internal.append(entry)
        writer.wake_followers()
        self.last_head = head
        if self.on_checkpoint is not None:
            try:
                self.on_checkpoint(head)
            except Exception:  # the anchor is a second line of defence: never fail a record
                log.exception("audit: cannot update the anchor")

    def _prune(self) -> None:
        """Take the files beyond the retention policy away (base first; see retention.py)."""
        self._writer.rotated = False
        due = self.retention.due(self.directory)
        if not due:
            return
        try:
            fields = take_away(self.retention, self.directory, due, self._signer)
        except AuditError as exc:  # kept: tried again at the next rotation
            log.error("%s", exc)  # noqa: TRY400
            return
        try:  # the record being written is durable already: this one is not its concern
            self._internal.append(self._writer.append(fields))
            self._checkpoint()  # the signed head is after the base again
        except AuditError as exc:
            log.error("audit retention: %s", exc)  # noqa: TRY400
