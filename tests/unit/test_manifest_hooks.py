"""The provider-hook keys of the manifest: every bad declaration names its field."""

from __future__ import annotations

from typing import Any

import pytest

from forgeoned.core.hooks_manifest import MetricKind
from forgeoned.core.manifest_parse import parse_manifest, parse_manifest_obj
from forgeoned.core.plugin_metrics import MetricOp, MetricResult, PluginMetricSet
from forgeoned.errors import ManifestError


def manifest(**extra: Any) -> dict[str, Any]:
    return {"name": "edge", "version": "1.0.0", "abi": 1, **extra}


def test_v1_manifest_without_hooks_is_unchanged() -> None:
    m = parse_manifest_obj(manifest())
    assert (m.functions, m.labels, m.config, m.metrics, m.capabilities.metrics) == (
        (), (), (), (), False,
    )  # fmt: skip
    assert "functions" not in m.to_json() and "metrics" not in m.to_json()["capabilities"]


def test_hooks_round_trip_and_declaring_metrics_requests_them() -> None:
    raw = manifest(
        functions=["check"],
        labels={"team": "edge"},
        config={"retries": {"type": "int", "default": 3, "help": "tries"}},
        metrics={"hits": {"type": "counter", "labels": {"verdict": ["allow", "deny"]}}},
    )
    m = parse_manifest_obj(raw)
    assert m.capabilities.metrics and m.metrics[0].kind is MetricKind.COUNTER
    assert parse_manifest(m.to_bytes()) == m


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"functions": ["Check"]}, "functions"),
        ({"functions": ["handle"]}, "functions"),
        ({"functions": ["a", "a"]}, "functions"),
        ({"functions": [f"f{i}" for i in range(33)]}, "functions"),
        ({"labels": {f"l{i}": "v" for i in range(17)}}, "labels"),
        ({"labels": {"team": "x" * 65}}, "labels.team"),
        ({"config": {"k": {"type": "list"}}}, "config.k.type"),
        ({"config": {"k": {"type": "int", "default": "3"}}}, "config.k.default"),
        ({"config": {"k": {"type": "int", "default": True}}}, "config.k.default"),
        ({"config": {"k": {"type": "string", "secret": True, "default": "x"}}}, "config.k.default"),
        ({"config": {"k": {"type": "bool", "colour": 1}}}, "config.k.colour"),
        ({"config": {"bad-key": {"type": "bool"}}}, "config.bad-key"),
        ({"metrics": {"up": {"type": "gauge"}}}, "metrics.up"),
        ({"metrics": {"hits_total": {"type": "counter"}}}, "metrics.hits_total"),
        ({"metrics": {"m": {"type": "summary"}}}, "metrics.m.type"),
        ({"metrics": {"m": {"type": "gauge", "buckets": [1]}}}, "metrics.m.buckets"),
        ({"metrics": {"m": {"type": "histogram", "buckets": [2, 1]}}}, "metrics.m.buckets"),
        (
            {"metrics": {"m": {"type": "gauge", "labels": {"plugin": ["a"]}}}},
            "metrics.m.labels.plugin",
        ),
        ({"metrics": {"m": {"type": "gauge", "labels": {"a": ["x y"]}}}}, "metrics.m.labels.a"),
        (
            {"metrics": {"m": {"type": "gauge",
                               "labels": {"a": [str(i) for i in range(9)],
                                          "b": [str(i) for i in range(8)]}}}},
            "metrics.m",
        ),
        (
            {"metrics": {f"m{j}": {"type": "gauge", "labels": {"a": [str(i) for i in range(16)],
                                                            "b": ["1", "2", "3", "4"]}}
                         for j in range(5)}},
            "metrics",
        ),
    ],
)  # fmt: skip
def test_bad_declarations_name_their_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError, match=f"manifest field '{field}'"):
        parse_manifest_obj(manifest(**extra))


def test_metric_set_accepts_only_declared_series() -> None:
    m = parse_manifest_obj(
        manifest(
            metrics={
                "hits": {"type": "counter", "labels": {"v": ["a", "b"]}},
                "depth": {"type": "gauge"},
            }
        )
    )
    s = PluginMetricSet(m.metrics)
    assert s.update(MetricOp.ADD, b"hits", b"v=a", 2) is MetricResult.OK
    assert s.update(MetricOp.ADD, b"hits", b"v=a", -1) is MetricResult.INVALID
    assert s.update(MetricOp.ADD, b"hits", b"v=c", 1) is MetricResult.INVALID
    assert s.update(MetricOp.ADD, b"hits", b"\xff", 1) is MetricResult.INVALID
    assert s.update(MetricOp.SET, b"depth", b"", float("nan")) is MetricResult.INVALID
    assert s.update(MetricOp.SET, b"depth", b"", -4) is MetricResult.OK  # a gauge may go down
    assert s.update(MetricOp.OBSERVE, b"depth", b"", 1) is MetricResult.INVALID
    assert s.update(MetricOp.ADD, b"other", b"", 1) is MetricResult.UNDECLARED
    snap = {x.decl.name: x.values for x in s.snapshot()}
    assert snap == {"depth": (((), -4.0),), "hits": ((("a",), 2.0),)}
