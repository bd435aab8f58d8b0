"""Live counters kept by the runtime and the daemon, read by the metrics collector at scrape time.

Plain integers in dicts are the cheapest thing to bump on a hot call path; the Prometheus
collector turns a :meth:`PluginStats.snapshot` into metric families when it is scraped.
Writers hold no lock: each plugin's counters are only written by the thread that currently
owns one of its Stores, and CPython makes single ``+=`` on a dict slot safe enough for
monotonic counters read by a scraper (a scrape may see a value one call old).
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

# Call durations: 10 µs … 10 s (plugin calls are mostly microseconds, deadlines are seconds).
CALL_BUCKETS: Final[tuple[float, ...]] = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Swap durations: 1 ms … 60 s.
SWAP_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


@dataclass
class Histogram:
    """Cumulative-on-read histogram: per-bucket counts, a sum and a count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self.counts[index] += 1
            self.total += value
            self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count) pairs, the last one with bound +inf."""
        with self._lock:
            counts = list(self.counts)
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass
class PluginStats:
    """Counters of one plugin name, kept across versions, restarts and swaps."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (export, outcome)
    hostcalls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (function, outcome)
    call_duration: Histogram = field(default_factory=lambda: Histogram(CALL_BUCKETS))
    fuel_consumed: int = 0
    restarts: int = 0
    log_dropped: int = 0


@dataclass
class DaemonStats:
    """Counters of the daemon as a whole (not of one plugin)."""

    swaps: Counter[tuple[str, str]] = field(default_factory=Counter)  # (plugin, outcome)
    swap_duration: Histogram = field(default_factory=lambda: Histogram(SWAP_BUCKETS))
    rejected: Counter[str] = field(default_factory=Counter)  # reason (bounded set)
    unsigned_loaded: int = 0
    journald_failures: int = 0
    audit_events: Counter[str] = field(default_factory=Counter)  # event name
    control_requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # action, code
    rescans: int = 0


@dataclass(frozen=True, slots=True)
class PluginView:
    """A read-only picture of one plugin for status output and metrics."""

    name: str
    version: str
    sha256: str
    state: str
    memory_bytes: int
    stats: PluginStats
    signers: tuple[str, ...] = ()
    last_error: str | None = None
    limits: dict[str, int] = field(default_factory=dict)
    instances: int = 0
