"""The call gate of one plugin: which calls may run now, and the order the others wait in.

The gate lets in at most ``capacity`` calls at a time (the number of instances of the current
version: each instance is one wasmtime Store, used by one thread at a time), and only while
the plugin is RUNNING and the gate is open. A call that cannot enter at once (every instance
busy, or the gate closed by a drain, a pause or a start in progress) joins one FIFO queue and
sleeps on its own lock, bounded by the hold timeout. When the plugin can no longer serve
(failed, quarantined, stopped) every waiter is refused at once.

A thread that holds an instance, once its own call is done, runs the calls waiting in line on
that instance itself, oldest first, for up to a small time budget (:meth:`CallGate.next_for`,
:meth:`CallGate.served`): each waiter only wakes up to collect its answer. When the budget is
spent, or the gate reopens, the freed instance is granted to the oldest waiter directly.

Why: with more caller threads than instances (the control server's workers on a one-instance
plugin), the instance used to go to whichever thread asked first after it was given back,
usually the thread that had just given it back, before the waiter it had woken got the GIL;
a waiting call could lose that race for seconds (3 s worst waits measured with 8 threads on
one instance). Granting each freed instance to the oldest waiter cured that but put a thread
wake-up between every two calls, which on oversubscribed cores cost more than it saved.
Running the waiters' calls in the thread already holding the instance keeps arrival order
without a wake-up on the instance's critical path. When an instance is free the path is one
lock round trip without allocation; watchers (a drain, the ``wait_*`` helpers) are notified
only when there are any.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from forgeoned.core.lifecycle import State
from forgeoned.errors import PluginPausedError, UnavailableError

V = TypeVar("V")
J = TypeVar("J")
# States in which a waiting call has a chance to be served soon.
HOLDING: Final = frozenset({State.STARTING, State.DRAINING, State.PAUSED})


class Waiter(Generic[V, J]):
    """A call queued at the gate with its ``job``; ``wake`` is released once it is granted an
    instance (``version``), refused (``error``) or served by another thread (``served``)."""

    __slots__ = ("error", "failure", "job", "result", "served", "taken", "version", "wake")

    def __init__(self, job: J) -> None:
        self.job = job
        self.wake = threading.Lock()
        self.wake.acquire()
        self.version: V | None = None
        self.error: UnavailableError | None = None
        self.taken = False  # another thread is running the job
        self.served = False
        self.result = b""
        self.failure: BaseException | None = None

    def outcome(self) -> bytes:
        """What the job returned, or raise what it raised (in the thread that ran it)."""
        if self.failure is not None:
            raise self.failure
        return self.result


class CallGate(Generic[V, J]):
    """Admission of one plugin's calls. Every field is guarded by ``lock``; the methods whose
    name ends in ``_locked`` expect the caller to hold it, the others take it themselves."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._watchers = 0  # threads waiting on _cond
        self.state = State.STOPPED
        self.current: V | None = None
        self.closed = False
        self.inflight = 0  # calls granted and not yet left, on any version
        self._capacity = 0  # instances of the current version
        self._busy = 0  # of them granted to calls
        self._queue: deque[Waiter[V, J]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def install_locked(self, version: V | None, capacity: int) -> None:
        if version is not self.current:
            self.current = version
            self._capacity = max(1, capacity) if version is not None else 0
            self._busy = 0  # calls still on the old version hold none of the new one's
        self.changed_locked()

    def changed_locked(self) -> None:
        """After any change: grant free instances to the oldest waiters, refuse every waiter
        if the plugin cannot serve any more, wake the watchers."""
        queue = self._queue
        if queue:
            current = self.current
            if not self.closed and self.state is State.RUNNING and current is not None:
                while queue and self._busy < self._capacity:
                    waiter = queue.popleft()
                    self._busy += 1
                    self.inflight += 1
                    waiter.version = current
                    waiter.wake.release()
            elif not self.closed and self.state not in HOLDING:
                while queue:
                    waiter = queue.popleft()
                    waiter.error = UnavailableError(f"plugin {self.name!r} is {self.state.value}")
                    waiter.wake.release()
        if self._watchers:
            self._cond.notify_all()

    def watch(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate`` (evaluated under the lock) holds; False on timeout."""
        with self.lock:
            self._watchers += 1
            try:
                return self._cond.wait_for(predicate, timeout)
            finally:
                self._watchers -= 1

    def enter(
        self, wait: bool, timeout: float, job: J, hold_paused: bool = True
    ) -> V | Waiter[V, J] | None:
        """The version to run ``job`` on, counted in flight: at once if an instance is free
        and nobody is ahead, else after waiting in line (at most ``timeout``); or the waiter,
        served, if another thread ran ``job`` meanwhile. With ``wait`` False, None when the
        plugin is not RUNNING behind an open gate (it still waits in line for a busy
        instance). UnavailableError if the plugin cannot serve or the wait timed out;
        PluginPausedError if it is paused and ``hold_paused`` is False."""
        with self.lock:
            if self._take_locked():
                return self.current
            serving = not self.closed and self.state is State.RUNNING
            if not serving:
                if not wait:
                    return None
                if self.state is State.PAUSED and not hold_paused:
                    raise PluginPausedError(
                        f"plugin {self.name!r} is paused (resume it, or let the call wait)"
                    )
                if not self.closed and self.state not in HOLDING:
                    raise UnavailableError(f"plugin {self.name!r} is {self.state.value}")
            waiter: Waiter[V, J] = Waiter(job)
            self._queue.append(waiter)
            if self._watchers:
                self._cond.notify_all()
        waiter.wake.acquire(timeout=timeout)
        with self.lock:
            if waiter.served or waiter.version is not None:  # perhaps just as it timed out
                return waiter if waiter.served else waiter.version
            if waiter.error is not None:
                raise waiter.error
            if not waiter.taken:
                self._queue.remove(waiter)
                if self.closed or self.state is not State.RUNNING:
                    raise UnavailableError(
                        f"plugin {self.name!r} stayed {self.state.value} for {timeout:g}s"
                    )
                raise UnavailableError(
                    f"plugin {self.name!r}: every instance stayed busy for {timeout:g}s"
                )
        waiter.wake.acquire()  # running in another thread: bounded by the call's deadline
        return waiter

    def try_enter(self) -> V | None:
        """The version to run a call on, counted in flight, if an instance is free now and no
        call waits; else None (never waits)."""
        with self.lock:
            return self.current if self._take_locked() else None

    def _take_locked(self) -> bool:
        if self.closed or self.state is not State.RUNNING or self._queue:
            return False
        if self._busy >= self._capacity:
            return False
        self._busy += 1
        self.inflight += 1
        if self._watchers:
            self._cond.notify_all()
        return True

    def next_for(self, version: V) -> Waiter[V, J] | None:
        """The oldest waiter, for a thread holding an instance of ``version`` to run its job
        (counted in flight until :meth:`served`); None if there is none or it may not run now."""
        with self.lock:
            if not self._queue or self.closed or self.state is not State.RUNNING:
                return None
            if version is not self.current:
                return None
            waiter = self._queue.popleft()
            waiter.taken = True
            self.inflight += 1
            return waiter

    def served(self, waiter: Waiter[V, J], result: bytes, failure: BaseException | None) -> None:
        """The job of ``waiter`` (from :meth:`next_for`) is done: hand it its outcome."""
        waiter.result, waiter.failure = result, failure
        with self.lock:
            self.inflight -= 1
            waiter.served = True
            waiter.wake.release()
            if self._watchers:
                self._cond.notify_all()

    def leave(self, version: V) -> None:
        """A call granted ``version`` is over: its instance goes to the oldest waiter."""
        with self.lock:
            self.inflight -= 1
            if version is self.current and self._busy > 0:
                self._busy -= 1
            self.changed_locked()
