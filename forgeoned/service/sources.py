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

Fail closed on audit (issue 12): a delivery is a change of the desired state, so its
``source.synced`` record is the precondition of the rename into plugins.d (the fetcher asks
:meth:`SourceFollower._approve` after verifying and before renaming). While the audit log
cannot be written (the gate is not ok) a sync does not even start: the source is *held*
(``outcome = "held"``, counted, not audited: it cannot be), ``pull`` is refused with
:class:`~forgeoned.errors.AuditUnavailableError` (503), and :meth:`resume` (the daemon calls
it once writes work again) wakes every source to sync at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import AuditGate, AuditSink, Clock
from forgeoned.core.sources import SourceConfig, SourceRecord, SyncOutcome, SyncResult
from forgeoned.errors import (
    ArtifactError,
    AuditError,
    AuditUnavailableError,
    NotFoundError,
    SourceError,
    SyncReason,
)

log = logging.getLogger(__name__)

HELD_MESSAGE = "audit log not writable"


class Fetcher(Protocol):
    """One source's sync (``forgeoned.adapters.oci.fetch.OciFetcher``)."""

    config: SourceConfig

    def sync(self, approve: Callable[[SyncResult], None] | None = None) -> SyncResult:
        """Raises :class:`SourceError` when nothing was written; ``approve`` is called with
        the result of a delivery before it lands (raising stops it)."""
        ...

    def close(self) -> None: ...


class _Source:
    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.record = SourceRecord(fetcher.config)
        self.lock = threading.Lock()  # one sync at a time
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()  # set: poll now (a stop, or the audit log is back)


class _Held(Exception):
    """The audit log refused the delivery's record: nothing landed."""


class SourceFollower:
    def __init__(
        self,
        fetchers: Sequence[Fetcher],
        audit: AuditSink,
        clock: Clock,
        gate: AuditGate | None = None,
    ) -> None:
        self._sources = {f.config.name: _Source(f) for f in fetchers}
        self._audit = audit
        self._clock = clock
        self._gate = gate  # None: the audit log is taken to be writable
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
        for src in self._sources.values():
            src.wake.set()
        deadline = self._clock.monotonic() + timeout
        for src in self._sources.values():
            if src.thread is not None:
                src.thread.join(max(0.0, deadline - self._clock.monotonic()))
            if src.thread is None or not src.thread.is_alive():
                with src.lock:
                    src.fetcher.close()

    def resume(self) -> None:
        """The audit log can be written again: every source syncs now (a held one delivers
        what it held; the others find their artifact unchanged, which is not audited)."""
        for src in self._sources.values():
            src.wake.set()

    def _poll(self, src: _Source) -> None:
        while not self._stop.is_set():
            self.sync(src.fetcher.config.name)
            src.wake.wait(src.fetcher.config.interval_s)
            src.wake.clear()

    def sync(self, name: str, actor: str | None = None) -> SyncResult:
        """Sync ``name`` now (waits for a sync in progress first); its result, audited.
        Raises :class:`AuditUnavailableError` for a forced sync (``actor`` given) held
        because the audit log cannot be written."""
        src = self._sources.get(name)
        if src is None:
            raise NotFoundError(f"no source named {name!r} (see forgeonectl sources)")
        with src.lock:
            result = self._sync(src, actor)
        if self.on_result is not None:
            self.on_result(name, result)
        if result.outcome is SyncOutcome.HELD and actor is not None:
            raise AuditUnavailableError(
                f"cannot write the audit log: source {name} not synced ({result.message})"
            )
        return result

    def _sync(self, src: _Source, actor: str | None) -> SyncResult:
        config = src.fetcher.config
        if self._gate is not None and not self._gate.ok:
            result = self._held()
        else:
            try:
                result = src.fetcher.sync(lambda r: self._approve(config, r, actor))
            except _Held:
                result = self._held()
            except SourceError as exc:
                result = self._failed(exc)
            except Exception as exc:  # the per-source boundary: record it, keep polling
                log.exception("source %s: sync failed unexpectedly", config.name)
                result = self._failed(SourceError(f"unexpected: {exc}", SyncReason.REGISTRY_ERROR))
        with self._view_lock:
            src.record.note(result)
        if result.outcome is SyncOutcome.FAILED:
            self._record(config, result, actor)
        elif result.outcome is SyncOutcome.HELD:
            log.warning("source %s: held: %s", config.name, result.message)
        return result

    def _held(self) -> SyncResult:
        return SyncResult(SyncOutcome.HELD, self._clock.wall(), message=HELD_MESSAGE)

    def _approve(self, config: SourceConfig, result: SyncResult, actor: str | None) -> None:
        """The delivery's ``source.synced``, written before it lands (its precondition)."""
        event = self._event(config, result, actor)
        try:
            if self._gate is None:
                self._audit.record(event)
            else:
                with self._gate.precondition():
                    self._audit.record(event)
        except AuditError as exc:
            log.warning("source %s: delivery held, %s not recorded: %s", config.name,
                        event.event.label, exc)  # fmt: skip
            raise _Held from exc

    def _failed(self, exc: SourceError) -> SyncResult:
        # a refused artifact names the plugin and version it claims (source.failed shows it)
        cause = exc.__cause__ if isinstance(exc.__cause__, ArtifactError) else None
        return SyncResult(SyncOutcome.FAILED, self._clock.wall(),
                          plugin=cause.plugin if cause else None,
                          version=cause.version if cause else None,
                          reason=exc.code, message=str(exc))  # fmt: skip

    def _event(self, config: SourceConfig, result: SyncResult, actor: str | None) -> AuditEvent:
        name = (
            EventName.SOURCE_SYNCED
            if result.outcome is SyncOutcome.SYNCED
            else EventName.SOURCE_FAILED
        )
        details = {"source": config.name, "reference": str(config.reference),
                   "digest": result.digest, "file": config.filename}  # fmt: skip
        return AuditEvent(
            name, plugin=result.plugin, version=result.version, sha256=result.sha256,
            actor=actor, reason=result.reason, message=result.message, details=details,
        )  # fmt: skip

    def _record(self, config: SourceConfig, result: SyncResult, actor: str | None) -> None:
        """A failure's ``source.failed`` (nothing happened: a lost record changes nothing)."""
        event = self._event(config, result, actor)
        try:
            self._audit.record(event)
        except AuditError as exc:  # the trail counts it as lost
            log.warning("source %s: %s not recorded: %s", config.name, event.event.label, exc)

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
