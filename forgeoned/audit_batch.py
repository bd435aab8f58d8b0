"""The daemon's audit sink for swaps, which can hold the events of the start and write them
together.

Every audit record is durable (``fdatasync``) before it returns; the audit log shares one sync
between concurrent callers, but a reconcile records one event after another, so a start that
installs 1,000 plugins paid 1,000 syncs in a row. During the start (nothing is served before
READY=1) the events are held instead, then written from a few threads at once (one thread per
plugin's events, so each plugin's events keep their order) and all of them are durable before
the start's state write and before READY=1: a crash in between can only repeat an event at
the next start, never lose one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from forgeoned.core.events import AuditEvent
from forgeoned.core.ports import AuditSink
from forgeoned.errors import ForgeonedError

log = logging.getLogger("forgeoned")
FLUSH_THREADS = 8


class AuditBatch:
    """Implements :class:`forgeoned.core.ports.AuditSink` in front of ``inner``."""

    def __init__(self, inner: AuditSink, threads: int = FLUSH_THREADS) -> None:
        self.inner = inner
        self.threads = threads
        self._held: list[AuditEvent] | None = None

    def record(self, event: AuditEvent) -> None:
        held = self._held
        if held is None:
            self.inner.record(event)
        else:
            held.append(event)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold every event recorded inside; write them all (durably) on the way out."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            self.flush(held)

    def flush(self, events: list[AuditEvent]) -> int:
        """Record ``events`` (each plugin's in order); returns how many failed (logged)."""
        groups: dict[str | None, list[AuditEvent]] = {}
        for event in events:
            groups.setdefault(event.plugin, []).append(event)

        def run(group: list[AuditEvent]) -> int:
            for i, event in enumerate(group):
                try:
                    self.inner.record(event)
                except ForgeonedError as exc:
                    log.error("audit: cannot record %s events of %s: %s",  # noqa: TRY400
                              len(group) - i, event.plugin, exc)  # fmt: skip
                    return len(group) - i
            return 0

        if len(groups) <= 1:
            return sum(run(g) for g in groups.values())
        with ThreadPoolExecutor(self.threads, thread_name_prefix="forgeoned-audit") as ex:
            return sum(ex.map(run, groups.values()))
