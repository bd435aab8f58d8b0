"""A plugin's own metrics: the series its manifest declares, and nothing else.

:class:`PluginMetricSet` is built from the manifest's :class:`MetricDecl` values and is the
only place a plugin's ``metric_add``/``metric_set``/``metric_observe`` calls land. Cardinality
is strict by construction: a series exists only for a declared metric and a combination of
declared label values (bounded by the caps in ``hooks_manifest``), so a plugin cannot grow
``/metrics`` whatever it passes. One set per plugin name, shared by its instances (they run on
several threads): updates take a lock.
"""

from __future__ import annotations

import enum
import math
import threading
from dataclasses import dataclass
from typing import Final

from forgeoned.core.hooks_manifest import MetricDecl, MetricKind
from forgeoned.core.stats import Histogram


class MetricOp(enum.Enum):
    ADD = "metric_add"
    SET = "metric_set"
    OBSERVE = "metric_observe"


class MetricResult(enum.Enum):
    OK = "ok"
    UNDECLARED = "undeclared"  # -2
    INVALID = "invalid"  # -3: label, value, or operation wrong for the type


_ALLOWED: Final = {
    MetricKind.COUNTER: frozenset({MetricOp.ADD}),
    MetricKind.GAUGE: frozenset({MetricOp.ADD, MetricOp.SET}),
    MetricKind.HISTOGRAM: frozenset({MetricOp.OBSERVE}),
}
_NO_LABELS: Final[tuple[str, ...]] = ()
_finite: Final = math.isfinite
_OBSERVE: Final = MetricOp.OBSERVE
_SET: Final = MetricOp.SET
_OK: Final = MetricResult.OK


@dataclass(frozen=True, slots=True)
class MetricSnapshot:
    decl: MetricDecl
    values: tuple[tuple[tuple[str, ...], float], ...]  # counters and gauges
    histograms: tuple[tuple[tuple[str, ...], Histogram], ...]


def parse_label_text(text: str) -> dict[str, str] | None:
    """``label=value`` lines joined by ``\\n`` (empty: none); None if malformed or repeated."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for line in text.split("\n"):
        label, sep, value = line.partition("=")
        if not sep or label in out:
            return None
        out[label] = value
    return out


class PluginMetricSet:
    def __init__(self, decls: tuple[MetricDecl, ...]) -> None:
        self.decls = {d.name: d for d in decls}
        # by the name's bytes: the declaration, the operations it allows, whether negative
        # values are refused (a counter)
        self._by_bytes = {
            d.name.encode(): (d, _ALLOWED[d.kind], d.kind is MetricKind.COUNTER) for d in decls
        }
        self._values: dict[tuple[str, tuple[str, ...]], float] = {}
        self._hists: dict[tuple[str, tuple[str, ...]], Histogram] = {}
        # (name, raw label bytes) -> the series key; only valid series are cached, so it is
        # bounded by the declared series
        self._keys: dict[tuple[bytes, bytes], tuple[str, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def _series(
        self, decl: MetricDecl, cache_key: tuple[bytes, bytes]
    ) -> tuple[str, tuple[str, ...]] | None:
        labels = cache_key[1]
        try:
            given = parse_label_text(labels.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        if given is None or len(given) != len(decl.labels):
            return None
        values = []
        for label, allowed in decl.labels:
            value = given.get(label)
            if value is None or value not in allowed:
                return None
            values.append(value)
        key = (decl.name, tuple(values) if values else _NO_LABELS)
        self._keys[cache_key] = key
        return key

    def update(self, op: MetricOp, name: bytes, labels: bytes, value: float) -> MetricResult:
        """``name`` and ``labels`` as the plugin passed them (UTF-8 bytes)."""
        entry = self._by_bytes.get(name)
        if entry is None:
            return MetricResult.UNDECLARED
        decl, allowed, counter = entry
        if op not in allowed or not _finite(value) or (counter and value < 0):
            return MetricResult.INVALID
        cache_key = (name, labels)
        key = self._keys.get(cache_key) or self._series(decl, cache_key)
        if key is None:
            return MetricResult.INVALID
        if op is _OBSERVE:
            hist = self._hists.get(key)
            if hist is None:
                with self._lock:
                    hist = self._hists.setdefault(key, Histogram(decl.buckets))
            hist.observe(value)  # a Histogram has its own lock
            return MetricResult.OK
        values = self._values
        with self._lock:
            if op is _SET:
                values[key] = value
            else:
                values[key] = values.get(key, 0.0) + value
        return _OK

    def snapshot(self) -> tuple[MetricSnapshot, ...]:
        """Every declared metric with the series that were written (sorted: stable output)."""
        with self._lock:
            values = dict(self._values)
            hists = dict(self._hists)
        out = []
        for name in sorted(self.decls):
            decl = self.decls[name]
            vals = tuple(sorted((k[1], v) for k, v in values.items() if k[0] == name))
            hs = tuple(sorted(((k[1], h) for k, h in hists.items() if k[0] == name),
                              key=lambda item: item[0]))  # fmt: skip
            out.append(MetricSnapshot(decl, vals, hs))
        return tuple(out)
