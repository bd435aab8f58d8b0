"""Scheduling each running plugin's ``tick`` export every ``tick_interval_ms``.

One thread for all plugins: a tick is skipped (not queued) while its plugin is not running,
and a tick that ran late is not followed by a burst of catch-up ticks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Final

from forgeoned.core.ports import Clock
from forgeoned.errors import ForgeonedError
from forgeoned.service.plugin_host import PluginHost

RECHECK_S: Final = 0.25  # how soon a newly started plugin gets its first schedule


def tick_interval(host: PluginHost) -> float:
    """Seconds between ticks of the host's current version (0: no ticks)."""
    version = host.current
    return version.tick_interval_s if version is not None else 0.0


class TickScheduler:
    def __init__(self, hosts: Callable[[], Iterable[PluginHost]], clock: Clock) -> None:
        self._hosts = hosts
        self._clock = clock
        self._stop = threading.Event()
        self._due: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="forgeoned-ticks", daemon=True)
        self.ticks = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            wait = self.run_due()

    def run_due(self) -> float:
        """Run every tick that is due; returns how long to wait for the next one."""
        now = self._clock.monotonic()
        seen: set[str] = set()
        next_due = now + RECHECK_S
        for host in list(self._hosts()):
            interval = tick_interval(host)
            if interval <= 0:
                continue
            seen.add(host.name)
            due = self._due.setdefault(host.name, now + interval)
            if due <= now:
                try:
                    if host.tick():
                        self.ticks += 1
                except ForgeonedError:
                    pass  # the host recorded the fault and told the supervisor
                after = self._clock.monotonic()
                due = due + interval if due + interval > after else after + interval
                self._due[host.name] = due
            next_due = min(next_due, due)
        for gone in set(self._due) - seen:
            del self._due[gone]
        return max(0.0, next_due - self._clock.monotonic())

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
