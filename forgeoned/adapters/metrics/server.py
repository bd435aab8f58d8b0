"""Prometheus metrics: a prometheus_client ``Collector`` and the ``/metrics`` server.

Both read the same :class:`forgeoned.adapters.metrics.model.MetricsModel` at scrape time.
:class:`ForgeonedCollector` is the prometheus_client face (register it in any registry;
tests use a fresh ``CollectorRegistry()`` and ``get_sample_value``). The server renders the
exposition text itself with :func:`render_text`: with 1,000 plugins there are ~37,000 samples
and prometheus_client's generic ``generate_latest`` needs several times longer for them than
this direct formatter; a test checks both give the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from forgeoned.adapters.metrics.http import MetricsHTTPServer, MetricsServerStats
from forgeoned.adapters.metrics.model import (
    AuditHealth,
    AuditWrites,
    Family,
    LabelBound,
    MetricsModel,
    MetricsSource,
)
from forgeoned.core.ports import Clock

__all__ = [
    "AuditHealth",
    "AuditWrites",
    "ForgeonedCollector",
    "LabelBound",
    "MetricsServer",
    "MetricsServerStats",
    "MetricsSource",
    "render_text",
]


class ForgeonedCollector(Collector):
    """Every forgeoned metric, computed from ``source`` at scrape time."""

    def __init__(
        self,
        source: MetricsSource,
        audit: AuditHealth | None = None,
        writes: AuditWrites | None = None,
    ) -> None:
        self.model = MetricsModel(source, audit, writes)

    def collect(self) -> Iterator[Metric]:
        for family in self.model.families():
            metric = Metric(family.name, family.help, family.kind)
            names = family.labels
            for suffix, values, value in family.samples:
                labels = dict(zip(names, values, strict=True))
                metric.add_sample(family.name + suffix, labels, value)
            for values, les, counts, total, count in family.histograms:
                labels = dict(zip(names, values, strict=True))
                for le, n in zip(les, counts, strict=True):
                    metric.add_sample(f"{family.name}_bucket", labels | {"le": le}, n)
                metric.add_sample(f"{family.name}_sum", labels, total)
                metric.add_sample(f"{family.name}_count", labels, count)
            yield metric


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _number(value: float) -> str:
    if type(value) is int:
        return str(value)
    return repr(float(value)).replace("inf", "Inf")


def render_text(families: list[Family]) -> bytes:
    """Prometheus text exposition format 0.0.4 of ``families``.

    Only families marked ``free_text`` get their label values escaped: every other label
    value comes from a validated or bounded set that cannot contain ``\\``, ``"`` or a newline.
    """
    out: list[str] = []
    add = out.append
    for family in families:
        name = family.name
        shown = f"{name}_total" if family.kind == "counter" else name
        text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        add(f"# HELP {shown} {text}\n# TYPE {shown} {family.kind}")
        template = ",".join(f'{label}="{{}}"' for label in family.labels)
        fmt = template.format
        escape = family.free_text
        for suffix, values, value in family.samples:
            number = str(value) if type(value) is int else _number(value)
            if values:
                labels = fmt(*map(_escape, values)) if escape else fmt(*values)
                add(f"{name}{suffix}{{{labels}}} {number}")
            else:
                add(f"{name}{suffix} {number}")
        for values, les, counts, total, count in family.histograms:
            labels = fmt(*map(_escape, values)) if escape else fmt(*values)
            bucket = f"{name}_bucket{{{labels},le=" if labels else f"{name}_bucket{{le="
            add("\n".join([f'{bucket}"{le}"}} {n}' for le, n in zip(les, counts, strict=True)]))
            tail = f"{{{labels}}}" if labels else ""
            add(f"{name}_sum{tail} {_number(total)}\n{name}_count{tail} {count}")
    add("")
    return "\n".join(out).encode()


class MetricsServer:
    """``/metrics`` on ``listen`` (``127.0.0.1:9464`` style) with its own registry."""

    def __init__(
        self,
        listen: str,
        source: MetricsSource,
        *,
        audit: AuditHealth | None = None,
        writes: AuditWrites | None = None,
        min_interval_s: float = 1.0,
        max_scrapes_per_s: float = 10.0,
        max_connections: int = 64,
        clock: Clock | None = None,
        sweep_interval_s: float = 0.1,
    ) -> None:
        self.collector = ForgeonedCollector(source, audit, writes)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        model = self.collector.model
        self._http = MetricsHTTPServer(
            listen,
            lambda: render_text(model.families()),
            min_interval_s=min_interval_s,
            max_scrapes_per_s=max_scrapes_per_s,
            max_connections=max_connections,
            clock=clock,
            sweep_interval_s=sweep_interval_s,
        )

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def http(self) -> MetricsHTTPServer:
        return self._http

    def statistics(self) -> MetricsServerStats:
        return self._http.statistics()

    @property
    def renders(self) -> int:
        return self._http.renders

    @property
    def served(self) -> int:
        return self._http.served

    def start(self) -> None:
        self._http.start()

    def close(self) -> None:
        self._http.close()
