"""The writing end of the audit chain: the file being appended to and when its lines are durable.

Each entry is sealed onto the chain (:func:`forgeoned.core.audit_chain.seal_line`: its seq,
time and the previous entry's hash) and written whole to the newest ``audit-NNNNNN.jsonl``
with ``O_APPEND``; a write the disk refuses is cut back, so no partial line is left. A new
file starts when the current one would pass ``rotate_bytes``, the old one synced first.
:meth:`ChainWriter.sync` is a group commit: whoever holds the sync lock syncs everything
written so far, so callers that queued behind it find their entry already durable.

What is written, and when a checkpoint is due, is the log's
(:class:`~forgeoned.adapters.audit.log.AuditLog`): it holds ``lock`` around every write and
reads the chain's end (``seq``, ``prev``) under it. Lock order: ``sync_lock``, then ``lock``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Final

from forgeoned.adapters.audit.files import cut_torn_tail, index_of, log_files, log_path, tail
from forgeoned.adapters.files.atomic import fsync_dir
from forgeoned.core import audit_chain
from forgeoned.core.ports import Clock
from forgeoned.errors import AuditError, AuditUnavailableError

log = logging.getLogger("forgeoned.audit")
_MAX_LINE: Final = 1 << 20


class ChainWriter:
    """Appends sealed entries to the newest log file. Found at construction: where the chain
    ends (``seq``, ``prev``), whether there was any file (``started_empty``) and the fields of
    a torn last line it cut away (``torn``); :meth:`open` then opens the file."""

    def __init__(self, directory: Path, clock: Clock, rotate_bytes: int) -> None:
        self.directory = directory
        self._clock = clock
        self._rotate_bytes = rotate_bytes
        self.lock = threading.Lock()  # every write, and the chain's end
        self.sync_lock = threading.Lock()  # taken before lock, never after it
        self._durable = threading.Condition()  # notified when entries become durable
        self.write_failures = 0
        self.since_checkpoint = 0  # entries written since the log's last checkpoint
        self.rotated = False  # a new file was started; the log's retention looks, then clears
        self.fd = self._sync_fd = -1
        self._retired: list[int] = []  # descriptors rotated away, closed by the next sync
        files = log_files(directory)
        self.started_empty = not files  # no log file was there when the log was opened
        self.seq, self.prev = 0, audit_chain.GENESIS_HASH
        self.torn: dict[str, Any] | None = None  # the audit.recovered fields of a cut tail
        if files:
            self.torn = cut_torn_tail(files[-1], int(clock.wall()))
            for path in reversed(files):
                last = tail(path)[1]
                if last:
                    entry = json.loads(last)
                    self.seq, self.prev = int(entry["seq"]), str(entry["hash"])
                    break
        self._index = index_of(files[-1]) if files else 1
        self._size = 0
        self.synced = self.seq  # the last entry known to be on disk

    def open(self) -> None:
        """Open the newest file for appending."""
        self.fd = self._open_file(log_path(self.directory, self._index))
        # A second descriptor for sync, which syncs outside the write lock (a rotation may
        # retire it meanwhile): no dup()/close() pair per sync.
        self._sync_fd = os.dup(self.fd)
        self._size = os.fstat(self.fd).st_size
        self.synced = self.seq
        self.since_checkpoint = 0

    def _open_file(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            fsync_dir(self.directory)
        except OSError as exc:
            raise AuditUnavailableError(f"cannot open {path}: {exc.strerror or exc}") from exc
        return fd

    # --- writing (under lock) ----------------------------------------------------------------

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Seal ``fields`` as the next entry and write it; not synced yet."""
        if self.fd < 0:
            raise AuditUnavailableError("the audit log is closed")
        ts = audit_chain.rfc3339(self._clock.wall())
        try:
            entry, data = audit_chain.seal_line(fields, self.seq + 1, ts, self.prev)
        except (TypeError, ValueError):
            try:
                plain = audit_chain.plain(fields)
            except ValueError as exc:
                raise AuditError(f"audit event is not representable as JSON: {exc}") from exc
            entry, data = audit_chain.seal_line(plain, self.seq + 1, ts, self.prev)
        if len(data) > _MAX_LINE:
            raise AuditError(f"audit entry too large ({len(data)} bytes)")
        if self._size and self._size + len(data) > self._rotate_bytes:
            self._rotate()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.write_failures += 1
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self._size)
            why = exc.strerror or exc
            raise AuditUnavailableError(f"cannot write the audit log: {why}") from exc
        self._size += len(data)
        self.seq, self.prev = entry["seq"], entry["hash"]
        self.since_checkpoint += 1
        return entry

    def datasync(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self.write_failures += 1
            why = exc.strerror or exc
            raise AuditUnavailableError(f"cannot sync the audit log: {why}") from exc

    def sync_written(self) -> None:
        """Sync the current file now: everything written so far is durable."""
        self.datasync(self.fd)
        self.synced = self.seq

    def _rotate(self) -> None:
        self.datasync(self.fd)
        new = self._open_file(log_path(self.directory, self._index + 1))  # may raise: no change
        os.close(self.fd)
        self.synced = self.seq
        self._retired.append(self._sync_fd)  # sync may be using it right now
        self._index += 1
        self.fd, self._sync_fd, self._size = new, os.dup(new), 0
        self.rotated = True

    def deleted_under_us(self) -> bool:
        """The file being written was deleted: what goes there is lost to every reader. Go
        on in a new file; False if no older file is left either (the chain is gone)."""
        left = log_files(self.directory)
        log.critical("audit: %s was deleted while in use", log_path(self.directory, self._index))
        index = max([index_of(p) for p in left] + [self._index]) + 1
        new = self._open_file(log_path(self.directory, index))
        os.close(self.fd)
        self._retired.append(self._sync_fd)
        self._index, self.fd, self._sync_fd, self._size = index, new, os.dup(new), 0
        return bool(left)

    def restart_chain(self) -> None:
        """The next entry starts a new chain (seq 1, after the genesis hash)."""
        self.seq, self.prev, self.synced = 0, audit_chain.GENESIS_HASH, 0

    def close_descriptors(self) -> None:
        """Close every descriptor (under both locks; the caller synced what it needed)."""
        for fd in (self.fd, self._sync_fd, *self._retired):
            if fd >= 0:
                os.close(fd)
        self.fd = self._sync_fd = -1
        self._retired = []

    # --- durability ----------------------------------------------------------------------

    def sync(self, seq: int) -> None:
        """Return once entry ``seq`` is on disk (group commit; takes both locks)."""
        # Whoever holds the sync lock syncs everything written so far, so callers that
        # queued behind it find their entry already durable.
        with self.sync_lock:
            if self.synced >= seq:
                return
            with self.lock:
                if self.fd < 0:
                    return  # closed meanwhile: close() synced everything
                target, fd = self.seq, self._sync_fd
                retired, self._retired = self._retired, []
            for old in retired:
                os.close(old)  # its file was synced by the rotation that retired it
            if fd >= 0:
                self.datasync(fd)
            self.synced = max(self.synced, target)
        self.wake_followers()

    def wait_durable(self, beyond: int, timeout: float) -> int:
        """Wait (at most ``timeout`` s) until an entry after ``beyond`` is durable."""
        with self._durable:
            self._durable.wait_for(lambda: self.synced > beyond, timeout)
            return self.synced

    def wake_followers(self) -> None:
        with self._durable:
            self._durable.notify_all()
