"""Live counters kept by the runtime and the daemon, read by the metrics collector at scrape time.

Plain integers in dicts are the cheapest thing to bump on a hot call path; the Prometheus
collector and the control API read a :meth:`PluginStats.totals` snapshot (through
:class:`PluginView`) when asked.

Writers hold no lock, and that is exact, not "safe enough": the call counters of a plugin
(``calls``, ``hostcalls``, ``call_duration``, ``fuel_consumed``) are written by its instances,
and every live instance writes its OWN set of them, which :meth:`PluginStats.claim_writer`
hands out (the plugin's own fields to one instance, a shard to each other one). An instance
is a wasmtime Store, run by one thread at a time, so each set has one writer at a time and a
read-modify-write of it can never interleave with another. Sharing one set between instances
would lose increments: ``limits.instances > 1`` runs instances on several threads at once,
and even with one instance per version a swap instantiates and ``init``s the new version
while the old one still serves calls. Readers add the sets up: a read may miss a call that is
finishing at that moment, never one that finished before.
"""

from __future__ import annotations

import bisect
import enum
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from forgeoned.core.state import QuarantineCause

if TYPE_CHECKING:
    from forgeoned.core.plugin_metrics import PluginMetricSet


class CallFuel(threading.local):
    """The fuel used by the last plugin call made for this thread (``handle`` and its
    ``alloc``), whichever thread ran it: set by the plugin host when the call returns or
    fails, read by the control API for the call's audit record. A thread-local, not a return
    value, so that the backend's ``invoke`` keeps returning the plugin's output."""

    fuel: int = 0


CALL_FUEL: Final = CallFuel()

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

    def add(self, other: Histogram) -> None:
        """Add a snapshot of ``other`` (same bounds), read without its writer's help."""
        counts = list(other.counts)  # one C-level copy: never a half-updated list
        with self._lock:
            for index, n in enumerate(counts):
                self.counts[index] += n
            self.total += other.total
            self.count += other.count

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
    http_requests: Counter[str] = field(default_factory=Counter)  # outcome (HostOutcome)
    call_duration: Histogram = field(default_factory=lambda: Histogram(CALL_BUCKETS))
    fuel_consumed: int = 0
    restarts: int = 0
    log_dropped: int = 0
    # provider hooks, set by the host-services factory at each load: the plugin's own
    # metrics, its named functions (bounding the export label), refused config files
    custom: PluginMetricSet | None = None
    functions: tuple[str, ...] = ()
    config_refused: int = 0
    # Writer shards (see the module docstring): every one ever handed out (their counts are
    # part of the totals for good), those free to hand out again, and whether the plugin's
    # own fields are taken by an instance. Bounded by the most instances alive at once.
    _shards: list[PluginStats] = field(default_factory=list, init=False, repr=False, compare=False)
    _free: list[PluginStats] = field(default_factory=list, init=False, repr=False, compare=False)
    _claimed: bool = field(default=False, init=False, repr=False, compare=False)
    _shard_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def claim_writer(self) -> PluginStats:
        """The counters one new instance writes, without a lock, until it gives them back with
        :meth:`release_writer`: these very fields if no live instance has them (so a plugin
        with one instance counts here directly), else a shard nobody else writes."""
        with self._shard_lock:
            if not self._claimed:
                self._claimed = True
                return self
            if self._free:
                return self._free.pop()
            shard = PluginStats()
            self._shards.append(shard)
            return shard

    def release_writer(self, writer: PluginStats) -> None:
        """``writer``'s instance is closed: nothing will write it any more (its counts stay)."""
        with self._shard_lock:
            if writer is self:
                self._claimed = False
            elif any(s is writer for s in self._shards) and all(
                s is not writer for s in self._free
            ):
                self._free.append(writer)

    def totals(self) -> PluginStats:
        """A snapshot of the plugin's counters with every shard added in (what readers show)."""
        with self._shard_lock:
            parts = (self, *self._shards)
        out = PluginStats(
            restarts=self.restarts,
            log_dropped=self.log_dropped,
            custom=self.custom,
            functions=self.functions,
            config_refused=self.config_refused,
        )
        for part in parts:
            # dict(counter) copies in one C call, under the GIL: never a half-inserted dict.
            out.calls.update(dict(part.calls))
            out.hostcalls.update(dict(part.hostcalls))
            out.http_requests.update(dict(part.http_requests))
            out.call_duration.add(part.call_duration)
            out.fuel_consumed += part.fuel_consumed
        return out


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
    follow_calls_dropped: int = 0  # live call records a slow audit follower lost


class CandidateStatus(enum.Enum):
    """Where a version that is not (yet) the active one stands."""

    PENDING = "pending"  # being verified, compiled or started right now
    REJECTED = "rejected"  # must not run (kept out until other bytes or an admin's retry)
    ROLLED_BACK = "rolled_back"  # ran and failed; the active version kept serving
    FAILED = "failed"  # ran and failed with nothing serving; the active version came back


@dataclass(frozen=True, slots=True)
class CandidateView:
    """A candidate version of a plugin other than the one it runs, for status output."""

    version: str
    sha256: str
    status: CandidateStatus
    reason: str | None = None  # the error code (the audit event's reason)
    message: str = ""
    at: float | None = None  # wall-clock time of the outcome (Unix seconds)
    file: str = ""


@dataclass(frozen=True, slots=True)
class PluginView:
    """A read-only picture of one plugin for status output and metrics.

    ``version``/``sha256`` are the active version's (also while it is down: failed or
    quarantined); a plugin with no active version yet shows the candidate being started.
    ``last_error`` is the text of the latest failure, ``last_error_code`` its code.
    """

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
    last_error_code: str | None = None
    last_error_at: float | None = None
    candidates: tuple[CandidateView, ...] = ()
    quarantine: QuarantineCause | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)  # effective (manifest ∩ policy)
    labels: tuple[tuple[str, str], ...] = ()  # the active version's manifest labels
