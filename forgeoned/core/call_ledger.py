"""Plugin calls, audited as aggregated summaries: one entry per interval and per
(caller, plugin, function, outcome), never one fsync'd entry per call.

The control API adds each ``invoke`` here (who called, which plugin and function, the outcome,
how long it took, the fuel it used); when a window of ``interval_s`` seconds (60 by default)
has ended, each key that saw calls becomes one :class:`CallSummary` (count, total and longest
duration, total and largest fuel, first and last call), which the caller writes as a
``plugin.calls`` audit entry. A summary is due at the first request after its window ended,
and whatever is left is drained when the server closes. Pure: time is whatever the caller passes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, NamedTuple

DEFAULT_INTERVAL_S: Final = 60.0


class CallKey(NamedTuple):
    """What a summary is per. :meth:`CallLedger.add` takes the plain tuple (making a
    NamedTuple costs a Python-level call, a plain tuple a fraction of that); the summaries
    carry this."""

    actor: str
    plugin: str
    function: str
    outcome: str


@dataclass(frozen=True, slots=True)
class CallSummary:
    key: CallKey
    count: int
    total_s: float
    max_s: float
    first: float  # wall-clock time of the first and the last call
    last: float
    interval_s: float
    fuel: int = 0  # total fuel of the calls, and the most one call used
    max_fuel: int = 0


@dataclass(slots=True)
class _Tally:
    count: int
    total_s: float
    max_s: float
    first: float
    last: float
    fuel: int
    max_fuel: int


class CallLedger:
    """Thread-safe; ``add`` is a dictionary update under a lock."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not interval_s > 0:
            raise ValueError(f"need interval_s > 0, got {interval_s}")
        self.interval_s = interval_s
        self._tallies: dict[tuple[str, str, str, str], _Tally] = {}
        self._window_end: float | None = None
        self._lock = threading.Lock()

    def add(
        self, key: tuple[str, str, str, str], duration_s: float, now: float, wall: float,
        fuel: int = 0,
    ) -> list[CallSummary] | None:  # fmt: skip
        """Count one call (``key``: actor, plugin, function, outcome); returns the summaries
        of a window that ended (to be written), or None.

        The hot path of every invoke: no call but the dictionary's, and ``if`` rather than
        ``max()`` (a builtin call costs more than a comparison)."""
        with self._lock:
            end = self._window_end
            due = None
            if end is None or now >= end:
                if end is not None:
                    due = self._take(now)
                self._window_end = now + self.interval_s
            tally = self._tallies.get(key)
            if tally is None:
                self._tallies[key] = _Tally(1, duration_s, duration_s, wall, wall, fuel, fuel)
            else:
                tally.count += 1
                tally.total_s += duration_s
                if duration_s > tally.max_s:  # noqa: PLR1730 (see above)
                    tally.max_s = duration_s
                tally.last = wall
                tally.fuel += fuel
                if fuel > tally.max_fuel:  # noqa: PLR1730
                    tally.max_fuel = fuel
            return due

    def due(self, now: float) -> list[CallSummary]:
        """The summaries of a window that has ended by ``now`` (cheap when none has)."""
        if not self.ended(now):
            return []
        with self._lock:
            return self._take(now) if self.ended(now) else []

    def drain(self) -> list[CallSummary]:
        """Everything counted so far (at shutdown)."""
        with self._lock:
            return self._take(None)

    def ended(self, now: float) -> bool:
        """Whether a window with calls has ended by ``now`` (cheap, no lock)."""
        end = self._window_end
        return end is not None and now >= end

    def _take(self, now: float | None) -> list[CallSummary]:
        out = [
            CallSummary(
                CallKey(*k),
                t.count,
                t.total_s,
                t.max_s,
                t.first,
                t.last,
                self.interval_s,
                t.fuel,
                t.max_fuel,
            )
            for k, t in self._tallies.items()
        ]
        self._tallies = {}
        self._window_end = None
        return out
