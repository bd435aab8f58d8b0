"""The call gate of one plugin: which calls may run now, and the order the others wait in.

The gate lets in at most ``capacity`` calls at a time (the number of instances of the current
version: each instance is one wasmtime Store, used by one thread at a time), and only while
the plugin is RUNNING and the gate is open. A call that cannot enter at once (every instance
busy, or the gate closed by a drain, a pause or a start in progress) joins one FIFO queue and
sleeps on its own lock, bounded by the hold timeout; whoever frees an instance or reopens the
gate grants it to the oldest waiter directly. When the plugin can no longer serve (failed,
quarantined, stopped) every waiter is refused at once.

Why a hand-off queue rather than a condition variable plus the version's instance pool: with
more caller threads than instances (the control server's workers on a one-instance plugin),
a thread giving an instance back took it again for its next call before the waiter it had
woken got the GIL, so a waiting call could lose that race many times over (a 2 s worst wait
was measured with 8 threads on one instance): the tail of ``invoke``. Served in arrival
order, a call waits for the calls ahead of it and no longer. When an instance is free the
path is one lock round trip without allocation; watchers (a drain, the ``wait_*`` helpers)
are notified only when there are any.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from forgeoned.core.lifecycle import State
from forgeoned.errors import ControlError

V = TypeVar("V")
# States in which a waiting call has a chance to be served soon.
HOLDING: Final = frozenset({State.STARTING, State.DRAINING, State.PAUSED})


class UnavailableError(ControlError):
    """The plugin exists but cannot take calls now (failed, quarantined, removed, timed out)."""

    reason = "unavailable"
    http_status = 503


class _Waiter(Generic[V]):
    """A call queued at the gate; ``wake`` is released once it is granted or refused."""

    __slots__ = ("error", "version", "wake")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.version: V | None = None
        self.error: UnavailableError | None = None


class CallGate(Generic[V]):
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
        self._queue: deque[_Waiter[V]] = deque()

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

    def enter(self, wait: bool, timeout: float) -> V | None:
        """The version to call, counted in flight: at once if an instance is free and nobody
        is ahead, else after waiting in line (at most ``timeout``). With ``wait`` False,
        None when the plugin is not RUNNING behind an open gate (it still waits in line for
        a busy instance). UnavailableError if the plugin cannot serve or the wait timed out."""
        with self.lock:
            serving = not self.closed and self.state is State.RUNNING
            if serving and self._busy < self._capacity and not self._queue:
                self._busy += 1
                self.inflight += 1
                if self._watchers:
                    self._cond.notify_all()
                return self.current
            if not serving:
                if not wait:
                    return None
                if not self.closed and self.state not in HOLDING:
                    raise UnavailableError(f"plugin {self.name!r} is {self.state.value}")
            waiter: _Waiter[V] = _Waiter()
            self._queue.append(waiter)
            if self._watchers:
                self._cond.notify_all()
        waiter.wake.acquire(timeout=timeout)
        with self.lock:
            if waiter.version is not None:  # granted (perhaps just as the wait timed out)
                return waiter.version
            if waiter.error is not None:
                raise waiter.error
            self._queue.remove(waiter)
            if self.closed or self.state is not State.RUNNING:
                raise UnavailableError(
                    f"plugin {self.name!r} stayed {self.state.value} for {timeout:g}s"
                )
            raise UnavailableError(
                f"plugin {self.name!r}: every instance stayed busy for {timeout:g}s"
            )

    def leave(self, version: V) -> None:
        """A call granted ``version`` is over: its instance goes to the next in line."""
        with self.lock:
            self.inflight -= 1
            if version is self.current and self._busy > 0:
                self._busy -= 1
            self.changed_locked()
