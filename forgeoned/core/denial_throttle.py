"""Which denied host calls become audit events: a bounded number per function per window.

Every denial is counted (``hostcalls{function, outcome="denied"}``), but a hostile or broken
plugin calling a denied function in a loop must not turn the audit log — one fsync'd,
hash-chained entry per event — into its amplifier. The rule, per plugin and per host
function:

- a *window* opens at the first denial of that function when none is open, and lasts
  ``window_s`` seconds (60 by default);
- within a window, the first ``limit`` denials (10 by default) are audited one by one, the
  rest are only counted ("suppressed");
- when a window that suppressed anything has ended, ONE summary event carries the
  suppressed count. It is due at the window's end and is written at the first of: the next
  denial of any function of this plugin, the plugin's next lifecycle or tick call
  (:meth:`DenialThrottle.due`), or the instance being closed (:meth:`DenialThrottle.drain`,
  which reports what was suppressed so far without reopening the window's allowance).

So a plugin can cause at most ``limit + 1`` audit events per function per window, whatever
it does. Pure: time is whatever the caller passes (the injected Clock's ``monotonic``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final

DEFAULT_LIMIT: Final = 10
DEFAULT_WINDOW_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class DenialSummary:
    """``suppressed`` denials of ``function`` were counted but not audited one by one."""

    function: str
    suppressed: int
    window_s: float


@dataclass(slots=True)
class _Window:
    opened: float
    audited: int = 0
    suppressed: int = 0


class DenialThrottle:
    """The audit budget for denied host calls of one plugin (thread-safe: the instances of
    one plugin share it and may run on different threads)."""

    def __init__(self, limit: int = DEFAULT_LIMIT, window_s: float = DEFAULT_WINDOW_S) -> None:
        if limit < 1 or not window_s > 0:
            raise ValueError(f"need limit >= 1 and window_s > 0, got {limit}, {window_s}")
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}
        self._next_end = math.inf  # earliest end of a window that suppressed something
        self._lock = threading.Lock()

    def deny(self, function: str, now: float) -> tuple[bool, list[DenialSummary]]:
        """Record one denial: (audit this one?, summaries now due, to be audited FIRST)."""
        with self._lock:
            due = self._close_ended(now) if now >= self._next_end else []
            window = self._windows.get(function)
            if window is None or now >= window.opened + self.window_s:
                window = self._windows[function] = _Window(opened=now)
            if window.audited < self.limit:
                window.audited += 1
                return True, due
            window.suppressed += 1
            self._next_end = min(self._next_end, window.opened + self.window_s)
            return False, due

    def due(self, now: float) -> list[DenialSummary]:
        """Summaries of the windows that have ended by ``now`` (cheap when there are none)."""
        if now < self._next_end:  # a stale read only delays a summary to the next check
            return []
        with self._lock:
            return self._close_ended(now)

    def ended(self, now: float) -> bool:
        """Whether a window that suppressed something has ended by ``now`` (cheap, no lock)."""
        return now >= self._next_end

    def drain(self) -> list[DenialSummary]:
        """Everything suppressed so far; open windows stay open with their allowance spent."""
        with self._lock:
            out = [self._summary(f, w) for f, w in self._windows.items() if w.suppressed]
            for window in self._windows.values():
                window.suppressed = 0
            self._next_end = math.inf
            return out

    def _summary(self, function: str, window: _Window) -> DenialSummary:
        return DenialSummary(function, window.suppressed, self.window_s)

    def _close_ended(self, now: float) -> list[DenialSummary]:
        out: list[DenialSummary] = []
        next_end = math.inf
        for function, window in list(self._windows.items()):
            end = window.opened + self.window_s
            if now >= end:
                if window.suppressed:
                    out.append(self._summary(function, window))
                del self._windows[function]
            elif window.suppressed:
                next_end = min(next_end, end)
        self._next_end = next_end
        return out
