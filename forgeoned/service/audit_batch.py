"""The daemon's audit sink for swaps, which writes the events of the start in the background.

Every audit record is durable (``fdatasync``) before it returns; the audit log shares one sync
between concurrent callers, but a reconcile records one event after another, so a start that
installs 1,000 plugins paid 1,000 syncs in a row, each while the loading waited. During the
start (nothing is served before READY=1) :meth:`AuditBatch.hold` hands the events to a few
writer threads instead: the loading goes on while they write, their syncs are shared, and each
plugin's events always go to the same writer, so they keep their order. Leaving ``hold`` waits
until every event is durable, which the daemon does before the start's state write and before
READY=1: a crash in between can only repeat an event at the next start, never lose one.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from queue import SimpleQueue

from forgeoned.core.events import AuditEvent
from forgeoned.core.ports import AuditSink
from forgeoned.errors import ForgeonedError

log = logging.getLogger("forgeoned")
WRITERS = 4  # 1, 2, 4 and 8 measured alike on 2 cores; more only add GIL hand-offs


class AuditBatch:
    """Implements :class:`forgeoned.core.ports.AuditSink` in front of ``inner``."""

    def __init__(self, inner: AuditSink, writers: int = WRITERS) -> None:
        self.inner = inner
        self.writers = writers
        self.failed = 0  # events the writers could not record (each logged)
        self._queues: list[SimpleQueue[AuditEvent | None]] | None = None

    def record(self, event: AuditEvent) -> None:
        queues = self._queues
        if queues is None:
            self.inner.record(event)
            return
        key = zlib.crc32((event.plugin or "").encode())
        queues[key % len(queues)].put(event)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Record events in the background inside; on the way out, wait until all are
        durable. Only the thread that entered may record inside (the daemon loop)."""
        queues: list[SimpleQueue[AuditEvent | None]] = [SimpleQueue() for _ in range(self.writers)]
        threads = [
            threading.Thread(target=self._write, args=(q,), name=f"forgeoned-audit-{i}")
            for i, q in enumerate(queues)
        ]
        for t in threads:
            t.start()
        self._queues = queues
        try:
            yield
        finally:
            self._queues = None
            for q in queues:
                q.put(None)
            for t in threads:
                t.join()

    def _write(self, queue: SimpleQueue[AuditEvent | None]) -> None:
        while (event := queue.get()) is not None:
            try:
                self.inner.record(event)
            except ForgeonedError as exc:
                self.failed += 1
                log.error(  # noqa: TRY400 (the error is the message; no traceback needed)
                    "audit: cannot record %s of %s: %s", event.event.label, event.plugin, exc
                )
