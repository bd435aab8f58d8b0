"""The daemon's AuditSink: the durable audit log first, then journald (best effort).

``record`` returns only when the event is in the audit log; if that fails it raises
:class:`forgeoned.errors.AuditError`, so the action being recorded is not reported as done.
The journal copy never blocks and never raises. Entries the log writes on its own
(signed checkpoints, torn-line recoveries) are forwarded to the journal too, which gives the
checkpoint signatures a second home outside the state directory.
"""

from __future__ import annotations

import threading
from typing import Any

from forgeoned.adapters.audit_log import AuditLog
from forgeoned.adapters.journald import JournaldSink
from forgeoned.core.events import AuditEvent
from forgeoned.core.stats import DaemonStats


class AuditTrail:
    """Implements :class:`forgeoned.core.ports.AuditSink`."""

    def __init__(self, log: AuditLog, journal: JournaldSink | None, stats: DaemonStats) -> None:
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
