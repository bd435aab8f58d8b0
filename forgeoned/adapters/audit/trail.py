"""The daemon's AuditSink: the durable audit log first, then journald (best effort).

``record`` returns only when the event is in the audit log; if that fails it raises
:class:`forgeoned.errors.AuditError`, so the action being recorded is not reported as done.
The journal copy never blocks and never raises. Entries the log writes on its own
(signed checkpoints, torn-line recoveries) are forwarded to the journal too, which gives the
checkpoint signatures a second home outside the state directory.

When the disk refuses a write (:class:`~forgeoned.errors.AuditUnavailableError`) the trail
is *degraded*: its :class:`~forgeoned.adapters.audit.outage.Outage` counts every record
refused or lost, ``on_change`` tells the daemon (status line, sd_notify), and a probe thread
retries every ``retry_s``. The first write that works, the probe's or a caller's, is the
``audit.gap`` entry covering the period; the trail is then healthy again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

from forgeoned.adapters.audit.console import level_of
from forgeoned.adapters.audit.journald import JournaldSink
from forgeoned.adapters.audit.outage import Outage
from forgeoned.core.events import PRIO_INFO, AuditEvent, EventName
from forgeoned.core.ports import Clock
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import AuditUnavailableError

logger = logging.getLogger("forgeoned")
RETRY_S: Final = 5.0  # how often a degraded trail tries to write its audit.gap entry


class EntrySink(Protocol):
    """Where copies of stored audit entries go (journald, or the console)."""

    def emit(self, entry: dict[str, Any]) -> None: ...


class ConsoleSink:
    """Echoes audit entries as log lines, for a daemon run in a terminal without journald
    (``make run``). Not used under systemd, where stderr is the journal already."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("forgeoned.audit")

    def emit(self, entry: dict[str, Any]) -> None:
        parts = [str(entry.get("event", "?"))]
        for key in ("plugin", "version", "actor", "reason"):
            if entry.get(key):
                parts.append(f"{key}={entry[key]}")
        if entry.get("message"):
            parts.append(f"- {entry['message']}")
        try:  # at the event's journal priority: a refused reload is an error here too
            priority = EventName.from_label(str(entry.get("event", ""))).priority
        except ValueError:
            priority = PRIO_INFO
        self._log.log(level_of(priority), "#%s %s", entry.get("seq", "?"), " ".join(parts))


class DurableLog(Protocol):
    """What the trail needs of :class:`~forgeoned.adapters.audit.log.AuditLog`."""

    @property
    def clock(self) -> Clock: ...

    def record(self, event: AuditEvent) -> dict[str, Any]: ...

    def take_internal(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class AuditTrail:
    """Implements :class:`forgeoned.core.ports.AuditSink`."""

    def __init__(
        self,
        log: DurableLog,
        journal: JournaldSink | EntrySink | None,
        stats: DaemonStats,
        outage: Outage | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self._log = log
        self._journal = journal
        self._stats = stats
        self.outage = outage if outage is not None else Outage()
        self.retry_s = retry_s
        # Called (without arguments, on the thread that saw it) when writes start failing
        # and when they work again; read ``outage.ok`` for which.
        self.on_change: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._gap_lock = threading.Lock()  # one audit.gap per outage, before anything else
        self._closed = threading.Event()
        self._probe: threading.Thread | None = None
        self._forward_internal()

    @property
    def log(self) -> DurableLog:
        return self._log

    def record(self, event: AuditEvent) -> None:
        self.record_entry(event)

    def record_entry(self, event: AuditEvent) -> dict[str, Any]:
        """Like :meth:`record` but returns the stored entry (with ``seq`` and ``hash``)."""
        precondition = self.outage.take_precondition()
        try:
            self._close_gap()
            entry = self._log.record(event)
        except AuditUnavailableError as exc:
            self._failed(event, exc, precondition is not None)
            raise
        if precondition is not None:
            precondition.written = True
        self._stored(event.event.label, entry)
        return entry

    def heal(self) -> bool:
        """Write the ``audit.gap`` entry now if writes were failing; True once they work."""
        try:
            self._close_gap()
        except AuditUnavailableError as exc:
            self.outage.failed(None, str(exc), self._log.clock.wall())
            return False
        return self.outage.ok

    def close(self) -> None:
        """Stop the probe and close the log (its final checkpoint goes to the journal too)."""
        self._closed.set()
        probe = self._probe
        if probe is not None and probe is not threading.current_thread():
            probe.join()
        self._log.close()
        self._forward_internal()

    # --- internals -------------------------------------------------------------------------

    def _stored(self, label: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self._stats.audit_events[label] += 1
        if self._journal is not None:
            self._journal.emit(entry)
        self._forward_internal()

    def _failed(self, event: AuditEvent, exc: AuditUnavailableError, precondition: bool) -> None:
        label = event.event.label
        opened = self.outage.failed(label, str(exc), self._log.clock.wall(), precondition)
        what = "refused" if precondition else "lost"
        logger.error("audit: %s of %s not recorded (%s): %s", label, event.plugin or "-", what, exc)
        if opened:
            self._changed()
            with self._lock:
                if self._probe is None or not self._probe.is_alive():
                    self._probe = threading.Thread(
                        target=self._retry, name="forgeoned-audit-probe", daemon=True
                    )
                    self._probe.start()

    def _close_gap(self) -> None:
        if self.outage.ok:
            return
        with self._gap_lock:
            if not self.outage.due:
                return  # another thread wrote it meanwhile
            gap = self.outage.gap_event(self._log.clock.wall())
            try:
                entry = self._log.record(gap)
            except AuditUnavailableError:
                self.outage.reopen()
                raise
            self.outage.finish()
        logger.warning("audit: writes work again; %s", gap.message)
        self._stored(gap.event.label, entry)
        self._changed()

    def _retry(self) -> None:
        while not self._closed.wait(self.retry_s):
            if self.heal():
                return

    def _changed(self) -> None:
        callback = self.on_change
        if callback is not None:
            try:
                callback()
            except Exception:  # a status display must not break the audit path
                logger.exception("audit: on_change callback failed")

    def _forward_internal(self) -> None:
        for entry in self._log.take_internal():
            with self._lock:
                self._stats.audit_events[str(entry["event"])] += 1
            if self._journal is not None:
                self._journal.emit(entry)
