"""Clocks: the real one and a manual one that makes timeout logic testable without sleeping."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


class SystemClock:
    """The real clock: ``time.monotonic`` for durations, ``time.time`` for timestamps."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


@dataclass
class ManualClock:
    """A clock that moves only when told to (for tests of backoff, budgets and deadlines)."""

    now: float = 0.0
    wall_offset: float = 1_700_000_000.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def wall(self) -> float:
        with self._lock:
            return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
