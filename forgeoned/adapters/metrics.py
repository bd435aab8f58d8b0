"""Prometheus metrics (DESIGN.md section 5), built at scrape time from live state.

:class:`ForgeonedCollector` reads a :class:`MetricsSource` on every ``collect`` and turns the
plain counters of :mod:`forgeoned.core.stats` into metric families; nothing is kept between
scrapes except the label bounds. Label values come only from bounded sets: plugin names
(validated, one per installed plugin), the ABI export and host function tables, and fixed
outcome/reason enums. An unknown value that looks like an identifier is kept until
:data:`EXTRA_VALUES` distinct ones were seen for that label; everything else is ``other``.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from forgeoned import errors
from forgeoned.adapters.metrics_http import MetricsHTTPServer
from forgeoned.core.abi import HOST_FUNCTIONS, HostOutcome, LifecycleExport
from forgeoned.core.audit_chain import VerifyResult
from forgeoned.core.events import EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.stats import DaemonStats, Histogram, PluginView
from forgeoned.core.swapper import Outcome

EXTRA_VALUES: Final = 16
OTHER: Final = "other"
_SAFE: Final = re.compile(r"^[a-z0-9][a-z0-9_.()-]{0,47}$")
_PLUGIN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SIGNATURE_REASONS: Final = (
    "unsigned",
    "untrusted_key",
    "revoked_key",
    "malformed_signature",
    "expired",
    "ambiguous",
    "already_signed",
)


def _error_reasons() -> set[str]:
    found: set[str] = set()
    todo: list[type[errors.ForgeonedError]] = [errors.ForgeonedError]
    while todo:
        cls = todo.pop()
        found.add(cls.reason)
        todo.extend(cls.__subclasses__())
    return found


class LabelBound:
    """Maps label values into a bounded set: known values, a few extra identifiers, ``other``."""

    def __init__(self, known: Iterable[str], extra: int = EXTRA_VALUES) -> None:
        self._known = frozenset(known)
        self._extra: set[str] = set()
        self._cap = extra
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._known or value in self._extra:
            return value
        if not _SAFE.match(value):
            return OTHER
        with self._lock:
            if len(self._extra) < self._cap:
                self._extra.add(value)
                return value
        return OTHER


class MetricsSource(Protocol):
    def plugin_views(self) -> list[PluginView]: ...

    def daemon_stats(self) -> DaemonStats: ...


class AuditHealth(Protocol):
    """What the collector shows about the audit log (``AuditLog`` implements it)."""

    @property
    def last_verify(self) -> VerifyResult | None: ...

    @property
    def head_seq(self) -> int: ...

    @property
    def write_failures(self) -> int: ...


def _plugin(name: str) -> str:
    return name if _PLUGIN.match(name) else OTHER


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    return [
        ("+Inf" if bound == math.inf else repr(bound), float(count))
        for bound, count in hist.cumulative()
    ]


class ForgeonedCollector(Collector):
    """Every forgeoned metric, computed from ``source`` at scrape time."""

    def __init__(self, source: MetricsSource, audit: AuditHealth | None = None) -> None:
        self._source = source
        self._audit = audit
        exports = [e.value for e in LifecycleExport] + ["handle", "alloc", "tick", "(start)"]
        call_outcomes = ["ok", "error"] + [k.value for k in errors.TrapKind]
        self._export = LabelBound(exports)
        self._call_outcome = LabelBound(call_outcomes)
        self._function = LabelBound(HOST_FUNCTIONS)
        self._host_outcome = LabelBound(o.value for o in HostOutcome)
        self._swap_outcome = LabelBound(o.value for o in Outcome)
        self._reason = LabelBound(_error_reasons() | set(_SIGNATURE_REASONS))
        self._event = LabelBound(e.label for e in EventName)
        self._action = LabelBound(())
        self._code = LabelBound(())

    def collect(self) -> Iterator[Metric]:
        views = self._source.plugin_views()
        yield from self._plugin_metrics(views)
        yield from self._daemon_metrics(self._source.daemon_stats())
        if self._audit is not None:
            yield from self._audit_metrics(self._audit)

    def _plugin_metrics(self, views: list[PluginView]) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "forgeone_plugin_info",
            "The active version of each plugin (always 1)",
            labels=["plugin", "version", "sha256"],
        )
        up = GaugeMetricFamily(
            "forgeone_plugin_up", "1 when the plugin is running, else 0", labels=["plugin"]
        )
        state = GaugeMetricFamily(
            "forgeone_plugin_state", "1 for the plugin's current state", labels=["plugin", "state"]
        )
        calls = CounterMetricFamily(
            "forgeone_plugin_calls",
            "Export calls by outcome",
            labels=["plugin", "export", "outcome"],
        )
        duration = HistogramMetricFamily(
            "forgeone_plugin_call_duration_seconds",
            "Duration of export calls",
            labels=["plugin"],
        )
        restarts = CounterMetricFamily(
            "forgeone_plugin_restarts", "Restarts by the supervisor", labels=["plugin"]
        )
        hostcalls = CounterMetricFamily(
            "forgeone_hostcalls",
            "Host function calls by outcome",
            labels=["plugin", "function", "outcome"],
        )
        memory = GaugeMetricFamily(
            "forgeone_plugin_memory_bytes", "Linear memory in use", labels=["plugin"]
        )
        fuel = CounterMetricFamily(
            "forgeone_plugin_fuel_consumed", "Fuel consumed by calls", labels=["plugin"]
        )
        dropped = CounterMetricFamily(
            "forgeone_plugin_log_dropped", "Log lines dropped by the rate limit", labels=["plugin"]
        )
        instances = GaugeMetricFamily(
            "forgeone_plugin_instances", "Live instances of the plugin", labels=["plugin"]
        )
        for view in views:
            name = _plugin(view.name)
            stats = view.stats
            info.add_metric([name, view.version, view.sha256], 1)
            up.add_metric([name], 1 if view.state == State.RUNNING.value else 0)
            for each in State:
                state.add_metric([name, each.value], 1 if view.state == each.value else 0)
            for (export, outcome), n in _merged(
                stats.calls.items(), self._export, self._call_outcome
            ):
                calls.add_metric([name, export, outcome], n)
            hist = stats.call_duration
            duration.add_metric([name], _buckets(hist), hist.total)
            restarts.add_metric([name], stats.restarts)
            for (func, outcome), n in _merged(
                stats.hostcalls.items(), self._function, self._host_outcome
            ):
                hostcalls.add_metric([name, func, outcome], n)
            memory.add_metric([name], view.memory_bytes)
            fuel.add_metric([name], stats.fuel_consumed)
            dropped.add_metric([name], stats.log_dropped)
            instances.add_metric([name], view.instances)
        yield from (info, up, state, calls, duration, restarts, hostcalls, memory, fuel)
        yield from (dropped, instances)

    def _daemon_metrics(self, stats: DaemonStats) -> Iterator[Metric]:
        swaps = CounterMetricFamily(
            "forgeone_swaps", "Version changes by outcome", labels=["plugin", "outcome"]
        )
        for (plugin, outcome), n in _merged(stats.swaps.items(), _plugin, self._swap_outcome):
            swaps.add_metric([plugin, outcome], n)
        yield swaps
        hist = stats.swap_duration
        swap_time = HistogramMetricFamily(
            "forgeone_swap_duration_seconds", "Duration of version swaps"
        )
        swap_time.add_metric([], _buckets(hist), hist.total)
        yield swap_time
        rejected = CounterMetricFamily(
            "forgeone_artifacts_rejected", "Artifacts refused, by reason", labels=["reason"]
        )
        for reason, n in _tally(stats.rejected.items(), self._reason):
            rejected.add_metric([reason], n)
        yield rejected
        events = CounterMetricFamily(
            "forgeone_audit_events", "Audit events recorded", labels=["event"]
        )
        for event, n in _tally(stats.audit_events.items(), self._event):
            events.add_metric([event], n)
        yield events
        control = CounterMetricFamily(
            "forgeone_control_requests",
            "Control API requests by action and result",
            labels=["action", "code"],
        )
        for (action, code), n in _merged(stats.control_requests.items(), self._action, self._code):
            control.add_metric([action, code], n)
        yield control
        yield CounterMetricFamily(
            "forgeone_journald_failures",
            "Journal entries that could not be sent",
            stats.journald_failures,
        )
        yield CounterMetricFamily(
            "forgeone_unsigned_loaded",
            "Unsigned plugins loaded (development mode)",
            stats.unsigned_loaded,
        )
        yield CounterMetricFamily("forgeone_rescans", "plugins.d rescans", stats.rescans)

    def _audit_metrics(self, audit: AuditHealth) -> Iterator[Metric]:
        result = audit.last_verify
        if result is not None:
            yield GaugeMetricFamily(
                "forgeone_audit_chain_ok",
                "1 if the last audit chain verification passed, 0 if it found a problem",
                1 if result.ok else 0,
            )
            yield GaugeMetricFamily(
                "forgeone_audit_chain_verified_entries",
                "Entries checked by the last verification",
                result.entries,
            )
        yield GaugeMetricFamily(
            "forgeone_audit_head_seq", "Seq of the newest audit entry", audit.head_seq
        )
        yield CounterMetricFamily(
            "forgeone_audit_write_failures", "Audit writes that failed", audit.write_failures
        )


def _merged(
    items: Iterable[tuple[tuple[str, str], int]],
    first: Callable[[str], str],
    second: Callable[[str], str],
) -> list[tuple[tuple[str, str], int]]:
    """Sum counters whose label pairs map to the same bounded pair."""
    out: dict[tuple[str, str], int] = {}
    for (a, b), n in items:
        key = (first(a), second(b))
        out[key] = out.get(key, 0) + n
    return sorted(out.items())


def _tally(items: Iterable[tuple[str, int]], bound: LabelBound) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for value, n in items:
        key = bound(value)
        out[key] = out.get(key, 0) + n
    return sorted(out.items())


class MetricsServer:
    """``/metrics`` on ``listen`` (``127.0.0.1:9464`` style) with its own registry."""

    def __init__(
        self,
        listen: str,
        source: MetricsSource,
        *,
        audit: AuditHealth | None = None,
        min_interval_s: float = 1.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.collector = ForgeonedCollector(source, audit)
        self.registry.register(self.collector)
        self._http = MetricsHTTPServer(listen, self.registry, min_interval_s=min_interval_s)

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def renders(self) -> int:
        return self._http.renders

    def start(self) -> None:
        self._http.start()

    def close(self) -> None:
        self._http.close()
