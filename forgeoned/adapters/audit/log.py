"""The tamper-evident audit log: append-only, hash-chained JSON lines under ``STATE_DIR/audit/``.

Files are ``audit-000001.jsonl``, ``audit-000002.jsonl``, …; a new file starts when the
current one would pass ``rotate_bytes``, and its first entry chains to the previous file's
last one, so rotation never breaks the chain. Each ``record`` returns only once its line is
on disk (``fdatasync``); concurrent callers share one sync (group commit). A signed checkpoint
is written first (seq 1), every ``checkpoint_every`` entries, after ``checkpoint_interval_s``
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
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from forgeoned.adapters.audit.files import (
    cut_torn_tail,
    index_of,
    last_seq,
    log_files,
    log_path,
    read_lines,
    tail,
    verify_directory,
)
from forgeoned.adapters.audit.retention import RetentionPolicy, take_away
from forgeoned.adapters.audit.signer import CheckpointSigner
from forgeoned.adapters.audit.verifier import ChainVerifier, Snapshot
from forgeoned.adapters.files.atomic import fsync_dir
from forgeoned.core import audit_chain
from forgeoned.core.audit_bounds import bound
from forgeoned.core.audit_chain import SignedHead, VerifyResult
from forgeoned.core.audit_export import export_csv, export_json
from forgeoned.core.events import AuditEvent
from forgeoned.core.ports import Clock
from forgeoned.errors import AuditError, AuditUnavailableError

__all__ = ["AuditLog", "VerifyResult", "export_csv", "export_json", "verify_directory"]

log = logging.getLogger("forgeoned.audit")
_MAX_LINE: Final = 1 << 20


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
        self._prune_due = False
        self._since_checkpoint = 0
        self._clock = clock
        self._rotate_bytes = rotate_bytes
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval_s
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._internal: list[dict[str, Any]] = []
        self._durable = threading.Condition()  # notified when entries become durable
        self.last_verify: VerifyResult | None = None
        self.write_failures = 0
        # The anchor's hooks (adapters/audit/anchor.py): told of each signed head, and
        # given each verdict to hold against the anchor.
        self.on_checkpoint: Callable[[SignedHead], None] | None = None
        self.anchor_check: Callable[[VerifyResult], VerifyResult] | None = None
        self.on_files_lost: Callable[[], None] | None = None  # before a new chain is anchored
        self.last_head: SignedHead | None = None
        self.started_empty = False  # no log file was there when the log was opened
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise AuditError(f"cannot create {directory}: {exc.strerror or exc}") from exc
        self._signer = CheckpointSigner(directory, key_path or directory / "checkpoint.key")
        self._fd = self._sync_fd = -1
        self._retired: list[int] = []  # descriptors rotated away, closed by the next _sync
        self._open()
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
        with self._lock:
            if self._fd >= 0 and os.fstat(self._fd).st_nlink == 0:
                self._deleted_under_us()
            entry = self._append(fields)
            if self._checkpoint_due():
                # The event itself is written; a failed checkpoint (counted in
                # write_failures) is retried with the next record, not blamed on this one.
                with contextlib.suppress(AuditError):
                    self._checkpoint()
            if self._prune_due:
                self._prune()
        self._sync(entry["seq"])
        return entry

    def rotate_key(self, actor: str | None) -> dict[str, Any]:
        """Hand the checkpoint key over to a new one: a checkpoint under the old key, then an
        ``audit.key_rotated`` entry signed by the old key naming the new one, then a checkpoint
        under the new key. AuditUnavailableError (the old key stays) if it cannot be written."""
        with self._lock:
            if self._since_checkpoint:
                self._checkpoint()
            old, seq = self.public_key, self._seq + 1
            fields = self._signer.begin_handover(seq, self._prev, actor)
            try:
                entry = self._append(fields)
                self._datasync(self._fd)
            except AuditError:
                self._signer.abort()
                raise
            self._synced = self._seq
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
        with self._lock:
            if self._since_checkpoint:
                self._checkpoint()

    def take_internal(self) -> list[dict[str, Any]]:
        """Entries the log wrote on its own (checkpoints, recoveries) since the last call."""
        with self._lock:
            out, self._internal = self._internal, []
        return out

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def head_seq(self) -> int:
        with self._lock:
            return self._seq

    def ends(self) -> tuple[int, int]:
        """``(last entry on disk, last entry written)``: the first is less when the files were
        cut under this log. Read under the lock, where no write is half done (a reader could
        take a half-written last line for the end of the file and look in the one before)."""
        with self._lock:
            return last_seq(self.directory), self._seq

    @property
    def durable_seq(self) -> int:
        """The last entry known to be on disk (what followers may be given)."""
        return self._synced

    def wait_durable(self, beyond: int, timeout: float) -> int:
        """Wait (at most ``timeout`` s) until an entry after ``beyond`` is durable."""
        with self._durable:
            self._durable.wait_for(lambda: self._synced > beyond, timeout)
            return self._synced

    def close(self) -> None:
        """Checkpoint, sync and close; idempotent."""
        with self._sync_lock, self._lock:  # the order _sync takes them in
            if self._fd < 0:
                return
            try:
                if self._since_checkpoint:
                    self._checkpoint()
                os.fdatasync(self._fd)
            finally:
                for fd in (self._fd, self._sync_fd, *self._retired):
                    if fd >= 0:
                        os.close(fd)
                self._fd = self._sync_fd = -1
                self._retired = []

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------

    def entries(self, since: float | None = None) -> Iterator[dict[str, Any]]:
        """Stored entries in order (``since``: epoch seconds, inclusive); skips unreadable lines."""
        for line in read_lines(self._snapshot().files):
            try:
                entry = json.loads(line.data)
                if since is not None and audit_chain.parse_rfc3339(entry["ts"]) < since:
                    continue
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(entry, dict):
                yield entry

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

    # --- internals -------------------------------------------------------------------------

    def _open(self) -> None:
        files = log_files(self.directory)
        self.started_empty = not files
        self._seq, self._prev = 0, audit_chain.GENESIS_HASH
        torn: dict[str, Any] | None = None
        if files:
            torn = cut_torn_tail(files[-1], int(self._clock.wall()))
            for path in reversed(files):
                last = tail(path)[1]
                if last:
                    entry = json.loads(last)
                    self._seq, self._prev = int(entry["seq"]), str(entry["hash"])
                    break
        if not files:
            self._signer.orphaned(int(self._clock.wall()))
        self._index = index_of(files[-1]) if files else 1
        self._fd = self._open_file(log_path(self.directory, self._index))
        # A second descriptor for _sync, which syncs outside the write lock (a rotation may
        # retire it meanwhile): no dup()/close() pair per sync.
        self._sync_fd = os.dup(self._fd)
        self._size = os.fstat(self._fd).st_size
        self._synced = self._seq
        self._since_checkpoint = 0
        self._last_checkpoint = self._clock.monotonic()
        with self._lock:
            if self._seq == 0:
                self._checkpoint()
            if torn is not None:
                self._internal.append(self._append(torn))
                self._checkpoint()

    def _open_file(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            fsync_dir(self.directory)
        except OSError as exc:
            raise AuditUnavailableError(f"cannot open {path}: {exc.strerror or exc}") from exc
        return fd

    def _append(self, fields: dict[str, Any]) -> dict[str, Any]:
        if self._fd < 0:
            raise AuditUnavailableError("the audit log is closed")
        ts = audit_chain.rfc3339(self._clock.wall())
        try:
            entry, data = audit_chain.seal_line(fields, self._seq + 1, ts, self._prev)
        except (TypeError, ValueError):
            try:
                plain = audit_chain.plain(fields)
            except ValueError as exc:
                raise AuditError(f"audit event is not representable as JSON: {exc}") from exc
            entry, data = audit_chain.seal_line(plain, self._seq + 1, ts, self._prev)
        if len(data) > _MAX_LINE:
            raise AuditError(f"audit entry too large ({len(data)} bytes)")
        if self._size and self._size + len(data) > self._rotate_bytes:
            self._rotate()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.write_failures += 1
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            why = exc.strerror or exc
            raise AuditUnavailableError(f"cannot write the audit log: {why}") from exc
        self._size += len(data)
        self._seq, self._prev = entry["seq"], entry["hash"]
        self._since_checkpoint += 1
        return entry

    def _datasync(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self.write_failures += 1
            why = exc.strerror or exc
            raise AuditUnavailableError(f"cannot sync the audit log: {why}") from exc

    def _rotate(self) -> None:
        self._datasync(self._fd)
        new = self._open_file(log_path(self.directory, self._index + 1))  # may raise: no change
        os.close(self._fd)
        self._synced = self._seq
        self._retired.append(self._sync_fd)  # _sync may be using it right now
        self._index += 1
        self._fd, self._sync_fd, self._size = new, os.dup(new), 0
        self._prune_due = self.retention.keep_files > 0

    def _deleted_under_us(self) -> None:
        """The file being written was deleted: what goes there is lost to every reader. Go on
        in a new file: the same chain if older files are left (verification then names the
        entries that were lost), a new chain if none are (the anchor reports the gap)."""
        left = log_files(self.directory)
        log.critical("audit: %s was deleted while in use", log_path(self.directory, self._index))
        index = max([index_of(p) for p in left] + [self._index]) + 1
        new = self._open_file(log_path(self.directory, index))
        os.close(self._fd)
        self._retired.append(self._sync_fd)
        self._index, self._fd, self._sync_fd, self._size = index, new, os.dup(new), 0
        if not left:
            if self.on_files_lost is not None:
                self.on_files_lost()
            self._signer.orphaned(int(self._clock.wall()))
            self._seq, self._prev, self._synced = 0, audit_chain.GENESIS_HASH, 0
            self._checkpoint()

    def _sync(self, seq: int) -> None:
        # Group commit: whoever holds the sync lock syncs everything written so far, so
        # callers that queued behind it find their entry already durable.
        with self._sync_lock:
            if self._synced >= seq:
                return
            with self._lock:
                if self._fd < 0:
                    return  # closed meanwhile: close() synced everything
                target, fd = self._seq, self._sync_fd
                retired, self._retired = self._retired, []
            for old in retired:
                os.close(old)  # its file was synced by the rotation that retired it
            if fd >= 0:
                self._datasync(fd)
            self._synced = max(self._synced, target)
        self._wake_followers()

    def _checkpoint_due(self) -> bool:
        if self._since_checkpoint >= self._checkpoint_every:
            return True
        elapsed = self._clock.monotonic() - self._last_checkpoint
        return self._since_checkpoint > 0 and elapsed >= self._checkpoint_interval

    def _checkpoint(self) -> None:
        """Append a signed checkpoint over the current head; sync it; update head.json."""
        entry = self._append(self._signer.checkpoint_fields(self._seq, self._prev))
        self._datasync(self._fd)
        self._synced = self._seq
        try:
            head = self._signer.write_head(entry["seq"], entry["hash"])
        except AuditError:
            self.write_failures += 1
            raise
        self._since_checkpoint = 0
        self._last_checkpoint = self._clock.monotonic()
        self._internal.append(entry)
        self._wake_followers()
        self.last_head = head
        if self.on_checkpoint is not None:
            try:
                self.on_checkpoint(head)
            except Exception:  # the anchor is a second line of defence: never fail a record
                log.exception("audit: cannot update the anchor")

    def _wake_followers(self) -> None:
        with self._durable:
            self._durable.notify_all()

    def _prune(self) -> None:
        """Take the files beyond the retention policy away (base first; see retention.py)."""
        self._prune_due = False
        due = self.retention.due(self.directory)
        if not due:
            return
        try:
            fields = take_away(self.retention, self.directory, due, self._signer)
        except AuditError as exc:  # kept: tried again at the next rotation
            log.error("%s", exc)  # noqa: TRY400
            return
        try:  # the record being written is durable already: this one is not its concern
            self._internal.append(self._append(fields))
            self._checkpoint()  # the signed head is after the base again
        except AuditError as exc:
            log.error("audit retention: %s", exc)  # noqa: TRY400

    def _snapshot(self) -> Snapshot:
        # Under the lock no write is half done, so every file ends at a line boundary
        # (unless something other than this log wrote to it: verify reports that).
        with self._lock:
            return Snapshot.take(self.directory)
