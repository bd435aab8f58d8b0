"""Every metric the Grafana dashboard and the alert rules use is one the collector exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from forgeoned.adapters.metrics.server import ForgeonedCollector
from forgeoned.core.audit_chain import VerifyResult
from forgeoned.core.oci import parse_reference
from forgeoned.core.sources import SourceConfig, SourceRecord, SyncOutcome, SyncResult
from forgeoned.core.stats import DaemonStats, PluginStats, PluginView

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "packaging" / "grafana" / "forgeoned-dashboard.json"
RULES = ROOT / "packaging" / "prometheus" / "forgeoned-rules.yml"
METRIC = re.compile(r"\bforgeone_[a-z_]+\b")


class Source:
    def __init__(self) -> None:
        stats = PluginStats()
        stats.calls[("handle", "ok")] += 1
        stats.hostcalls[("log", "ok")] += 1
        stats.http_requests["refused"] += 1
        stats.call_duration.observe(0.001)
        self.views = [PluginView("hello", "1.0.0", "ab" * 32, "running", 65536, stats)]
        self.stats = DaemonStats()
        self.stats.swaps[("hello", "upgraded")] += 1
        self.stats.swap_duration.observe(0.1)
        self.stats.rejected["unsigned"] += 1
        self.stats.audit_events["plugin.installed"] += 1
        self.stats.control_requests[("list", "ok")] += 1

    def plugin_views(self) -> list[PluginView]:
        return self.views

    def daemon_stats(self) -> DaemonStats:
        return self.stats

    def review_due(self) -> dict[str, float]:
        return {"hello": 1_800_000_000.0}

    def source_records(self) -> list[SourceRecord]:
        record = SourceRecord(SourceConfig("hello", parse_reference("oci://127.0.0.1:5000/p:1")))
        record.note(SyncResult(SyncOutcome.FAILED, 10.0, reason="registry_timeout"))
        return [record]


class Audit:
    last_verify = VerifyResult(True, 3)
    head_seq = 3
    write_failures = 0


class Writes:
    ok = True
    lost_total = 0
    refused_total = 0


def _exported() -> set[str]:
    registry = CollectorRegistry()
    registry.register(ForgeonedCollector(Source(), Audit(), Writes()))
    return {sample.name for family in registry.collect() for sample in family.samples}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def test_dashboard_metrics_exist() -> None:
    used = {m for expr in _dashboard_exprs() for m in METRIC.findall(expr)}
    assert len(used) >= 15
    assert used - _exported() == set()


def test_rule_metrics_exist() -> None:
    used = set(METRIC.findall(RULES.read_text()))
    assert {"forgeone_plugin_state", "forgeone_audit_chain_ok", "forgeone_audit_write_ok"} <= used
    assert used - _exported() == set()


def test_design_section_5_metrics_are_exported() -> None:
    design = {
        "forgeone_plugin_info",
        "forgeone_plugin_up",
        "forgeone_plugin_calls_total",
        "forgeone_plugin_call_duration_seconds_bucket",
        "forgeone_plugin_restarts_total",
        "forgeone_swaps_total",
        "forgeone_swap_duration_seconds_bucket",
        "forgeone_artifacts_rejected_total",
        "forgeone_hostcalls_total",
        "forgeone_plugin_memory_bytes",
        "forgeone_plugin_fuel_consumed_total",
    }
    assert design - _exported() == set()


def test_dashboard_covers_the_issue_panels() -> None:
    titles = " ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for word in (
        "states",
        "call rate",
        "latency",
        "swaps",
        "rejected",
        "restarts",
        "memory",
        "fuel",
    ):
        assert word in titles


def test_every_alert_the_docs_name_is_a_rule() -> None:
    rules = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    named: set[str] = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        named |= set(re.findall(r"`(Forgeone\w*)`", doc.read_text()))
    named -= {"ForgeonedError"}
    assert named and named - rules == set()
