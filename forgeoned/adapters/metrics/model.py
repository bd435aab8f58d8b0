"""The forgeoned metric table (DESIGN.md section 5), computed from live state at scrape time.

:class:`MetricsModel` reads a :class:`MetricsSource` and returns plain :class:`Family` values;
:mod:`forgeoned.adapters.metrics.server` turns them into prometheus_client families (for registries
and tests) or straight into exposition text (the fast path of ``/metrics``), so both always
show the same thing. Label values come only from bounded sets: plugin names (validated, one
per installed plugin), the ABI export and host function tables, and fixed outcome/reason
enums. An unknown value that looks like an identifier is kept until :data:`EXTRA_VALUES`
distinct ones were seen for that label; everything else becomes ``other``.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from forgeoned import errors
from forgeoned.adapters.metrics.audit import (
    AuditHealth,
    AuditWrites,
    audit_families,
    write_families,
)
from forgeoned.adapters.metrics.family import Family
from forgeoned.adapters.metrics.plugin_custom import config_refused_family, custom_families
from forgeoned.adapters.metrics.sources import source_families
from forgeoned.core.abi import HOST_FUNCTIONS, HostOutcome, LifecycleExport
from forgeoned.core.events import EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.manifest import NAME_RE
from forgeoned.core.sources import SourceRecord
from forgeoned.core.stats import DaemonStats, PluginView
from forgeoned.core.swap_outcome import Outcome

EXTRA_VALUES: Final = 16
OTHER: Final = "other"
_SAFE: Final = re.compile(r"^[a-z0-9][a-z0-9_.()-]{0,47}$")
_STATES: Final = tuple(s.value for s in State)
_RUNNING: Final = State.RUNNING.value

__all__ = ["AuditHealth", "AuditWrites", "Family", "MetricsModel", "MetricsSource", "StaticSource"]


class MetricsSource(Protocol):
    def plugin_views(self) -> list[PluginView]: ...

    def daemon_stats(self) -> DaemonStats: ...

    def review_due(self) -> Mapping[str, float]:
        """Each plugin's next review date (Unix time)."""
        ...

    def source_records(self) -> list[SourceRecord]: ...


@dataclass
class StaticSource:
    """A MetricsSource over fixed values (tests, benchmarks, dashboards work), the way httpx
    ships ``MockTransport``: the daemon's own source is ``forgeoned.daemon.facade``."""

    views: list[PluginView] = field(default_factory=list)
    stats: DaemonStats = field(default_factory=DaemonStats)
    reviews: dict[str, float] = field(default_factory=dict)
    sources: list[SourceRecord] = field(default_factory=list)

    def review_due(self) -> Mapping[str, float]:
        return self.reviews

    def plugin_views(self) -> list[PluginView]:
        return self.views

    def daemon_stats(self) -> DaemonStats:
        return self.stats

    def source_records(self) -> list[SourceRecord]:
        return self.sources


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


def _plugin(name: str) -> str:
    return name if NAME_RE.match(name) else OTHER


class MetricsModel:
    """Builds every forgeoned metric family from ``source`` (and ``audit``) on each call."""

    def __init__(
        self,
        source: MetricsSource,
        audit: AuditHealth | None = None,
        writes: AuditWrites | None = None,
    ) -> None:
        self.source = source
        self.audit = audit
        self.writes = writes
        exports = [e.value for e in LifecycleExport] + ["handle", "alloc", "tick", "(start)"]
        self._export = LabelBound(exports)
        self._call_outcome = LabelBound(["ok", "error"] + [k.value for k in errors.TrapKind])
        self._function = LabelBound(HOST_FUNCTIONS)
        self._host_outcome = LabelBound(o.value for o in HostOutcome)
        self._swap_outcome = LabelBound(o.value for o in Outcome)
        self._reason = LabelBound(errors.all_codes())
        self._sync_reason = LabelBound(  # a staging refusal keeps its own reason
            [r.value for r in errors.SyncReason] + [r.value for r in errors.StagingReason]
        )
        self._event = LabelBound(e.label for e in EventName)
        self._action = LabelBound(())
        self._code = LabelBound(())

    def families(self) -> list[Family]:
        views = self.source.plugin_views()
        out = self._plugin_families(views)
        out.append(config_refused_family(views))
        out += custom_families(views)
        out.append(self._review_family(views, self.source.review_due()))
        out += self._daemon_families(self.source.daemon_stats())
        out += source_families(self.source.source_records(), self._sync_reason)
        if self.audit is not None:
            out += audit_families(self.audit)
        if self.writes is not None:
            out += write_families(self.writes)
        return out

    def _plugin_families(self, views: list[PluginView]) -> list[Family]:
        p = ("plugin",)
        info = Family(
            "forgeone_plugin_info",
            "gauge",
            "Active version (always 1)",
            (*p, "version", "sha256"),
            free_text=True,
        )
        up = Family("forgeone_plugin_up", "gauge", "1 when the plugin is running, else 0", p)
        state = Family("forgeone_plugin_state", "gauge", "1 for the current state", (*p, "state"))
        calls = Family(
            "forgeone_plugin_calls", "counter", "Export calls by outcome", (*p, "export", "outcome")
        )
        duration = Family(
            "forgeone_plugin_call_duration_seconds", "histogram", "Duration of export calls", p
        )
        restarts = Family("forgeone_plugin_restarts", "counter", "Supervisor restarts", p)
        hostcalls = Family(
            "forgeone_hostcalls", "counter", "Host calls by outcome", (*p, "function", "outcome")
        )
        http = Family(
            "forgeone_plugin_http_requests", "counter", "Outbound HTTP requests", (*p, "outcome")
        )
        memory = Family("forgeone_plugin_memory_bytes", "gauge", "Linear memory in use", p)
        fuel = Family("forgeone_plugin_fuel_consumed", "counter", "Fuel consumed by calls", p)
        dropped = Family("forgeone_plugin_log_dropped", "counter", "Log lines rate-limited", p)
        instances = Family("forgeone_plugin_instances", "gauge", "Live instances", p)
        for view in views:
            name = (_plugin(view.name),)
            stats = view.stats
            info.add((*name, view.version, view.sha256), 1)
            up.add(name, 1 if view.state == _RUNNING else 0)
            for each in _STATES:
                state.add((*name, each), 1 if view.state == each else 0)
            export: Callable[[str], str] = self._export
            if stats.functions:  # the manifest's named functions: a bounded set of its own
                export = functools.partial(_named, frozenset(stats.functions), self._export)
            for pair, n in _merged(stats.calls.items(), export, self._call_outcome):
                calls.add((*name, *pair), n)
            duration.add_histogram(name, stats.call_duration)
            restarts.add(name, stats.restarts)
            for pair, n in _merged(stats.hostcalls.items(), self._function, self._host_outcome):
                hostcalls.add((*name, *pair), n)
            for outcome, n in _tally(stats.http_requests.items(), self._host_outcome):
                http.add((*name, outcome), n)
            memory.add(name, view.memory_bytes)
            fuel.add(name, stats.fuel_consumed)
            dropped.add(name, stats.log_dropped)
            instances.add(name, view.instances)
        return [
            info,
            up,
            state,
            calls,
            duration,
            restarts,
            hostcalls,
            http,
            memory,
            fuel,
            dropped,
            instances,
        ]

    def _review_family(self, views: list[PluginView], due: Mapping[str, float]) -> Family:
        family = Family(
            "forgeone_plugin_review_due_timestamp_seconds", "gauge",
            "When the plugin's next review is due (Unix time; now after a quarantine or "
            "rollback)", ("plugin",),
        )  # fmt: skip
        for view in views:
            if view.name in due:
                family.add((_plugin(view.name),), due[view.name])
        return family

    def _daemon_families(self, stats: DaemonStats) -> list[Family]:
        swaps = Family("forgeone_swaps", "counter", "Version changes", ("plugin", "outcome"))
        for pair, n in _merged(stats.swaps.items(), _plugin, self._swap_outcome):
            swaps.add(pair, n)
        swap_time = Family("forgeone_swap_duration_seconds", "histogram", "Swap durations")
        swap_time.add_histogram((), stats.swap_duration)
        rejected = Family(
            "forgeone_artifacts_rejected", "counter", "Refused artifacts", ("reason",)
        )
        for reason, n in _tally(stats.rejected.items(), self._reason):
            rejected.add((reason,), n)
        events = Family("forgeone_audit_events", "counter", "Audit events recorded", ("event",))
        for event, n in _tally(stats.audit_events.items(), self._event):
            events.add((event,), n)
        control = Family(
            "forgeone_control_requests", "counter", "Control API requests", ("action", "code")
        )
        for pair, n in _merged(stats.control_requests.items(), self._action, self._code):
            control.add(pair, n)
        scalars = [
            (
                "forgeone_journald_failures",
                "Journal entries not delivered",
                stats.journald_failures,
            ),
            (
                "forgeone_unsigned_loaded",
                "Unsigned plugins loaded (dev mode)",
                stats.unsigned_loaded,
            ),
            ("forgeone_rescans", "plugins.d rescans", stats.rescans),
            (
                "forgeone_audit_follow_calls_dropped",
                "Live call records dropped for audit followers too slow to take them",
                stats.follow_calls_dropped,
            ),
        ]
        out = [swaps, swap_time, rejected, events, control]
        for name, text, value in scalars:
            family = Family(name, "counter", text)
            family.add((), value)
            out.append(family)
        return out


def _named(named: frozenset[str], bound: LabelBound, value: str) -> str:
    return value if value in named else bound(value)


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
