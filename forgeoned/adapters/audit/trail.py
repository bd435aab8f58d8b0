"""The daemon's AuditSink: the durable audit log first, then journald (best effort).

``record`` returns only when the event is in the audit log; if that fails it raises
:class:`forgeoned.errors.AuditError`, so the action being recorded is not reported as done.
The journal copy never blocks and never raises. Entries the log writes on its own
(signed checkpoints, torn-line recoveries) are forwarded to the journal too, which gives the
checkpoint signatures a second home outside the state directory.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from forgeoned.adapters.audit.journald import JournaldSink
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.events import AuditEvent
from forgeoned.core.stats import DaemonStats


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
        self._log.info("#%s %s", entry.get("seq", "?"), " ".join(parts))


class AuditTrail:
    """Implements :class:`forgeoned.core.ports.AuditSink`."""

    def __init__(
        self, log: AuditLog, journal: JournaldSink | EntrySink | None, stats: DaemonStats
    ) -> None:
        self._log = log
        self._journal = journal
        self._stats = stats
        self._lock = threading.Lock()
        self._forward_internal()

    @property
    def log(self) -> AuditLog:
        return self._log

    def record(self, event: AuditEvent) -> None:
        self.record_entry(event)

    def record_entry(self, event: AuditEvent) -> dict[str, Any]:
        """Like :meth:`record` but returns the stored entry (with ``seq`` and ``hash``)."""
        entry = self._log.record(event)
        with self._lock:
            self._stats.audit_events[event.event.label] += 1
        if self._journal is not None:
            self._journal.emit(entry)
        self._forward_internal()
        return entry

    def close(self) -> None:
        """Close the log (its final checkpoint goes to the journal too)."""
        self._log.close()
        self._forward_internal()

    def _forward_internal(self) -> None:
        for entry in self._log.take_internal():
            with self._lock:
                self._stats.audit_events[str(entry["event"])] += 1
            if self._journal is not None:
                self._journal.emit(entry)
