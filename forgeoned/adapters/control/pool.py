"""A lane of the control server: worker threads for blocking work off the event loop, cheaply.

Why not ``loop.run_in_executor``: it costs two future objects, a done-callback chain and one
self-pipe write (one loop wake-up) per request; measured during development it gave about
half the server's 16-client throughput. Here a job is a plain tuple on a ``SimpleQueue``;
finished jobs go on a deque and the loop is woken at most once per batch (``_wake_pending``),
so under load many responses are written per wake-up.

The pool is bounded (``size`` threads); its queue is bounded in practice by the server's
connection limit, since each connection has at most one request in flight. The server runs
two, the control lane and the invoke lane, so a full one does not hold up the other.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_Item = tuple[Callable[[], Any], Callable[[Any], None]]


class WorkerPool:
    def __init__(self, size: int, name: str = "forgeoned-control") -> None:
        self._jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[Callable[[Any], None], Any]] = collections.deque()
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]
        self._started = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._started = True
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], T], done: Callable[[T | None], None]) -> None:
        """Run ``job`` in a worker; ``done(result)`` is then called on the loop (with None if
        the job raised: a bug, logged here)."""
        self._jobs.put((job, done))

    def shutdown(self, timeout: float) -> None:
        """Let queued jobs finish, then stop every thread (each joined with ``timeout``)."""
        if not self._started:
            return
        self._started = False
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        jobs, done = self._jobs, self._done
        while True:
            item = jobs.get()
            if item is None:
                return
            job, callback = item
            try:
                result = job()
            except BaseException:  # a job must answer; this is a bug in the server
                log.exception("control worker job failed")
                result = None
            done.append((callback, result))
            if not self._wake_pending:
                self._wake_pending = True
                loop = self._loop
                assert loop is not None
                try:
                    loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: the server is shutting down
                    return

    def _deliver(self) -> None:
        # Clear the flag *before* draining: a worker that appends after the last popleft
        # sees the flag down and schedules another delivery, so nothing is stranded.
        self._wake_pending = False
        done = self._done
        while done:
            callback, result = done.popleft()
            callback(result)
