"""Following OCI sources: one thread per source, its syncs, their audit events and records.

Isolation: each source has its own thread, its own lock and its own file in plugins.d, and a
sync only ever *writes a file*; the daemon loop picks the file up through the watcher like
any other. So a registry that hangs, refuses or serves garbage delays only its own source,
never another source, a swap, or a call (calls never touch this module). Every sync's
outcome is counted; a delivery (``source.synced``) and every failure (``source.failed``,
with its :class:`~forgeoned.errors.SyncReason`) is an audit event. An unchanged poll is
counted but not audited: a source polled every few minutes would fill the log with nothing.

A forced sync (``forgeonectl pull NAME``) runs on the caller's thread under the source's
lock, so it never overlaps the source's own poll; its outcome is returned to the caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.sources import SourceConfig, SourceRecord, SyncOutcome, SyncResult
from forgeoned.errors import AuditError, NotFoundError, SourceError, SyncReason

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    """One source's sync (``forgeoned.adapters.oci.fetch.OciFetcher``)."""

    config: SourceConfig

    def sync(self) -> SyncResult:
        """Raises :class:`SourceError` when nothing was written."""
        ...

    def close(self) -> None: ...


class _Source:
    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.record = SourceRecord(fetcher.config)
        self.lock = threading.Lock()  # one sync at a time
        self.thread: threading.Thread | None = None


class SourceFollower:
    def __init__(self, fetchers: Sequence[Fetcher], audit: AuditSink, clock: Clock) -> None:
        self._sources = {f.config.name: _Source(f) for f in fetchers}
        self._audit = audit
        self._clock = clock
        self._stop = threading.Event()
        self._view_lock = threading.Lock()
        self.on_result: Callable[[str, SyncResult], None] | None = None  # tests, benchmarks

    @property
    def names(self) -> list[str]:
        return sorted(self._sources)

    def start(self) -> None:
        """Start polling: each source syncs at once, then every ``interval_s``."""
        for name, src in self._sources.items():
            src.thread = threading.Thread(
                target=self._poll, args=(src,), name=f"forgeoned-source-{name}", daemon=True
            )
            src.thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop polling; a sync in progress ends within its own timeout (not waited for
        longer than ``timeout``: it writes nothing once it notices the stop)."""
        self._stop.set()
        deadline = self._clock.monotonic() + timeout
        for src in self._sources.values():
            if src.thread is not None:
                src.thread.join(max(0.0, deadline - self._clock.monotonic()))
            if src.thread is None or not src.thread.is_alive():
                with src.lock:
                    src.fetcher.close()

    def _poll(self, src: _Source) -> None:
        while not self._stop.is_set():
            self.sync(src.fetcher.config.name)
            if self._stop.wait(src.fetcher.config.interval_s):
                return

    def sync(self, name: str, actor: str | None = None) -> SyncResult:
        """Sync ``name`` now (waits for a sync in progress first); its result, audited."""
        src = self._sources.get(name)
        if src is None:
            raise NotFoundError(f"no source named {name!r} (see forgeonectl sources)")
        with src.lock:
            try:
                result = src.fetcher.sync()
            except SourceError as exc:
                result = self._failed(exc)
            except Exception as exc:  # the per-source boundary: record it, keep polling
                log.exception("source %s: sync failed unexpectedly", name)
                result = self._failed(SourceError(f"unexpected: {exc}", SyncReason.REGISTRY_ERROR))
            with self._view_lock:
                src.record.note(result)
            self._record(src.fetcher.config, result, actor)
        if self.on_result is not None:
            self.on_result(name, result)
        return result

    def _failed(self, exc: SourceError) -> SyncResult:
        return SyncResult(SyncOutcome.FAILED, self._clock.wall(), reason=exc.code,
                          message=str(exc))  # fmt: skip

    def _record(self, config: SourceConfig, result: SyncResult, actor: str | None) -> None:
        if result.outcome is SyncOutcome.UNCHANGED:
            return
        name = (
            EventName.SOURCE_SYNCED
            if result.outcome is SyncOutcome.SYNCED
            else EventName.SOURCE_FAILED
        )
        details = {"source": config.name, "reference": str(config.reference),
                   "digest": result.digest, "file": config.filename}  # fmt: skip
        event = AuditEvent(
            name, plugin=result.plugin, version=result.version, sha256=result.sha256,
            actor=actor, reason=result.reason, message=result.message, details=details,
        )  # fmt: skip
        try:
            self._audit.record(event)
        except AuditError as exc:  # the trail counts it as lost; the sync itself stands
            log.warning("source %s: %s not recorded: %s", config.name, name.label, exc)

    def views(self) -> list[dict[str, Any]]:
        with self._view_lock:
            return [self._sources[n].record.to_json() for n in sorted(self._sources)]

    def records(self) -> list[SourceRecord]:
        """Snapshots for the metrics (copies: a scrape never sees a half-noted result)."""
        with self._view_lock:
            out = []
            for n in sorted(self._sources):
                r = self._sources[n].record
                out.append(SourceRecord(r.config, r.last, r.last_success, r.failing_since,
                                        r.syncs.copy(), r.failures.copy()))  # fmt: skip
            return out
