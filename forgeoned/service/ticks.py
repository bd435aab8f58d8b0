"""Scheduling each running plugin's ``tick`` export every ``tick_interval_ms``, independently.

One scheduler thread keeps the timetable; each due tick runs on a worker of its own (a
thread pool: one thread per tick running at the moment), so a slow tick delays only its own
plugin. A plugin has at most one tick running: a tick that comes due while the previous one
still runs is skipped, not queued, and so is a tick while the plugin is not running; a tick
that ran late is not followed by a burst of catch-up ticks. A tick returning non-zero is the
plugin's answer (counted as ``outcome="error"``), not a fault; a trap is a fault as for a call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from forgeoned.core.ports import Clock
from forgeoned.errors import ForgeonedError
from forgeoned.service.plugin_host import PluginHost

log = logging.getLogger(__name__)
RECHECK_S: Final = 0.25  # how soon a newly started plugin gets its first schedule
MAX_RUNNING: Final = 256  # ticks running at once (one per plugin at most); beyond: queued
Spawn = Callable[[str, Callable[[], None]], object]  # run plugin NAME's tick job elsewhere


def tick_interval(host: PluginHost) -> float:
    """Seconds between ticks of the host's current version (0: no ticks)."""
    version = host.current
    return version.tick_interval_s if version is not None else 0.0


class TickScheduler:
    """``spawn`` runs a due tick (default: a worker thread of a pool); a test passes its own
    to run some inline and hold others."""

    def __init__(
        self,
        hosts: Callable[[], Iterable[PluginHost]],
        clock: Clock,
        spawn: Spawn | None = None,
    ) -> None:
        self._hosts = hosts
        self._clock = clock
        self._stop = threading.Event()
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._running: set[str] = set()  # plugins with a tick in flight
        self._pool: ThreadPoolExecutor | None = None
        if spawn is None:
            pool = self._pool = ThreadPoolExecutor(MAX_RUNNING, thread_name_prefix="forgeoned-tick")
            spawn = lambda name, job: pool.submit(job)  # noqa: E731
        self._spawn: Spawn = spawn
        self._thread = threading.Thread(target=self._run, name="forgeoned-ticks", daemon=True)
        self.ticks = 0  # ticks that ran and returned 0
        self.runs = 0  # ticks that ended, whatever they returned
        self._runs_of: dict[str, int] = {}  # the same by plugin
        self.skipped = 0  # ticks not started because the plugin's previous one still ran

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            wait = self.run_due()

    def run_due(self) -> float:
        """Start every tick that is due; returns how long to wait for the next one."""
        now = self._clock.monotonic()
        seen: set[str] = set()
        next_due = now + RECHECK_S
        for host in list(self._hosts()):
            interval = tick_interval(host)
            if interval <= 0:
                continue
            name = host.name
            seen.add(name)
            due = self._due.setdefault(name, now + interval)
            if due <= now:
                self._start(host)
                due = due + interval if due + interval > now else now + interval
                self._due[name] = due
            next_due = min(next_due, due)
        for gone in set(self._due) - seen:
            del self._due[gone]
        return max(0.0, next_due - self._clock.monotonic())

    def _start(self, host: PluginHost) -> None:
        with self._lock:
            if host.name in self._running:
                self.skipped += 1
                return
            self._running.add(host.name)
        try:
            self._spawn(host.name, lambda: self._tick(host))
        except RuntimeError:  # the pool is shut down: the daemon is stopping
            with self._lock:
                self._running.discard(host.name)

    def _tick(self, host: PluginHost) -> None:
        try:
            ran = host.tick()
        except ForgeonedError:
            ran = False  # the plugin's answer, or a fault the host recorded and reported
        except Exception:  # the per-plugin boundary: one bad tick must not stop the others
            log.exception("tick of plugin %s failed", host.name)
            ran = False
        with self._lock:
            self._running.discard(host.name)
            self.ticks += ran
            self.runs += 1
            self._runs_of[host.name] = self._runs_of.get(host.name, 0) + 1
            self._ended.notify_all()

    def runs_of(self, name: str) -> int:
        with self._lock:
            return self._runs_of.get(name, 0)

    def wait_runs(self, count: int, timeout: float, name: str | None = None) -> bool:
        """Wait (bounded) until at least ``count`` ticks ended, in all or of plugin ``name``."""

        def enough() -> bool:
            return (self.runs if name is None else self._runs_of.get(name, 0)) >= count

        with self._ended:
            return self._ended.wait_for(enough, timeout)

    def close(self) -> None:
        """Start no more ticks; the ones running end by themselves or with the drain."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
