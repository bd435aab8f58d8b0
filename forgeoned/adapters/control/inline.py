"""Which plugins' invokes the server runs on its event-loop thread instead of in a worker.

Why: handing a request to a worker thread and its answer back costs two thread switches and
GIL hand-offs, about 40 µs per invoke through the daemon on this machine, three times the
sample plugin's own call (docs/performance.md). A short call run where the request was parsed
costs none of that. But everything else the server does (accepting, reading every
connection, handing the control lane its work) waits while the loop thread runs a plugin, so
only calls known to be short may run there, and only while the plugin's instance is free at
once (``ControlBackend.invoke_now`` never waits).

The rule:

- *short by contract*: only plugins whose call timeout is at most ``longest_s`` (1 s, the
  manifest default) run inline at all, so no inline call can hold the loop longer than that,
  whatever its input (``ControlBackend.invoke_now`` declines the others);
- *probation*: a plugin runs inline once its last ``probation`` calls that ran at once in the
  invoke lane (no wait for an instance) each took at most ``fast_s``; plugins never seen run
  in the lane first;
- *budget*: inline calls longer than ``fast_s`` (a plugin's occasional fsync, say) are paid
  from one server-wide budget that refills at ``slow_share`` of clock time, up to
  ``burst_s``; the call that overdraws it puts its plugin back on probation;
- *strikes*: an inline call longer than ``long_s`` is a strike and puts its plugin back on
  probation, twice as long each time; after ``max_strikes`` the plugin never runs inline again
  (until the server restarts).

So, whatever callers send, the loop thread spends at most about ``slow_share`` of its time
(plus ``burst_s``) in inline calls longer than ``fast_s``, no such call takes more than
``long_s``, except at most ``max_strikes`` per plugin name, each bounded by that plugin's
call timeout and so by ``longest_s``: a caller who may invoke a plugin whose calls slow down
on some input can delay the rest of the control API (an admin's ``status`` included) by at
most ``longest_s``, ``max_strikes`` times per plugin it may invoke, in the server's life.
The clock is injected (tests step a manual one).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final

from forgeoned.core.ports import Clock

LONGEST_S: Final = 1.0
FAST_S: Final = 0.001
LONG_S: Final = 0.02
SLOW_SHARE: Final = 0.1
BURST_S: Final = 0.1
PROBATION: Final = 32
MAX_STRIKES: Final = 3
_MAX_PLUGINS: Final = 65536


@dataclass(slots=True)
class _Record:
    needed: int  # clean lane calls still needed to run inline (0: runs inline)
    probation: int  # the length of the next probation
    strikes: int = 0


@dataclass(frozen=True, slots=True)
class InlineStats:
    inline_calls: int
    demotions: int
    strikes: int
    eligible: tuple[str, ...]
    banned: tuple[str, ...]


@dataclass
class InlinePolicy:
    clock: Clock
    longest_s: float = LONGEST_S
    fast_s: float = FAST_S
    long_s: float = LONG_S
    slow_share: float = SLOW_SHARE
    burst_s: float = BURST_S
    probation: int = PROBATION
    max_strikes: int = MAX_STRIKES
    inline_calls: int = 0
    demotions: int = 0
    _records: dict[str, _Record] = field(default_factory=dict)
    _budget: float | None = None  # seconds of slow inline calls left (full at first use)
    _refilled: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def eligible(self, plugin: str) -> bool:
        """Whether the next invoke of ``plugin`` may run on the loop thread (loop thread)."""
        record = self._records.get(plugin)
        return record is not None and record.needed == 0 and record.strikes < self.max_strikes

    def lane_call(self, plugin: str, seconds: float) -> None:
        """A call of ``plugin`` that ran at once in the invoke lane took ``seconds``."""
        with self._lock:
            record = self._records.get(plugin)
            if record is None:
                if len(self._records) >= _MAX_PLUGINS:  # names are bounded; stay so
                    return
                record = self._records[plugin] = _Record(self.probation, self.probation)
            if record.needed == 0 or record.strikes >= self.max_strikes:
                return
            record.needed = record.probation if seconds > self.fast_s else record.needed - 1

    def inline_call(self, plugin: str, seconds: float) -> None:
        """A call of ``plugin`` on the loop thread took ``seconds`` (loop thread)."""
        self.inline_calls += 1
        if seconds <= self.fast_s:
            return
        with self._lock:
            record = self._records[plugin]
            if seconds > self.long_s:
                record.strikes += 1
                record.probation = min(record.probation * 2, 1 << 20)
                self._demote(record)
            elif not self._pay(seconds):
                self._demote(record)

    def _pay(self, seconds: float) -> bool:
        """Take ``seconds`` from the slow-call budget; False if that overdrew it."""
        now = self.clock.monotonic()
        budget = self.burst_s
        if self._budget is not None:
            budget = min(budget, self._budget + (now - self._refilled) * self.slow_share)
        self._refilled = now
        self._budget = budget - seconds
        return self._budget >= 0

    def _demote(self, record: _Record) -> None:
        self.demotions += 1
        record.needed = record.probation

    def statistics(self) -> InlineStats:
        with self._lock:
            records = dict(self._records)
            return InlineStats(
                inline_calls=self.inline_calls,
                demotions=self.demotions,
                strikes=sum(r.strikes for r in records.values()),
                eligible=tuple(sorted(n for n in records if self.eligible(n))),
                banned=tuple(
                    sorted(n for n, r in records.items() if r.strikes >= self.max_strikes)
                ),
            )
