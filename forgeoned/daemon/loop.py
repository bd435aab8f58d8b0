"""The daemon's single worker: runs posted closures in order.

The loop thread owns every change of the running set; signal handlers and other threads
(the watcher, control requests, a call that saw a plugin fault) only post closures to its
inbox, a ``SimpleQueue`` whose ``put`` is safe in a signal handler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Final, TypeVar

T = TypeVar("T")
REQUEST_TIMEOUT_S: Final = 300.0


class Loop:
    def __init__(self) -> None:
        self.inbox: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self.thread_id: int | None = None

    def post(self, job: Callable[[], None]) -> None:
        self.inbox.put(job)

    def call(self, job: Callable[[], T], timeout: float = REQUEST_TIMEOUT_S) -> T:
        """Run ``job`` on the loop and return its result (or raise its error)."""
        if threading.get_ident() == self.thread_id:
            return job()
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the waiting caller
                done.set_exception(exc)

        self.post(run)
        return done.result(timeout)
