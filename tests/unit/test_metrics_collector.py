"""The Prometheus collector on a fresh registry, read back with get_sample_value."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from forgeoned.adapters.audit.outage import Outage
from forgeoned.adapters.metrics.model import StaticSource
from forgeoned.adapters.metrics.server import ForgeonedCollector, MetricsServer, render_text
from forgeoned.core.audit_chain import VerifyResult
from forgeoned.core.stats import DaemonStats, PluginStats, PluginView
from forgeoned.errors import ConfigError


@dataclass
class FakeAudit:
    last_verify: VerifyResult | None = None
    head_seq: int = 0
    write_failures: int = 0


def _view(name: str, state: str, stats: PluginStats | None = None) -> PluginView:
    return PluginView(
        name=name,
        version="1.2.0",
        sha256="ab" * 32,
        state=state,
        memory_bytes=131072,
        stats=stats or PluginStats(),
        instances=1,
    )


def _registry(source: StaticSource, audit: FakeAudit | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ForgeonedCollector(source, audit))
    return registry


def test_plugin_metrics_of_design_section_5() -> None:
    stats = PluginStats()
    stats.calls[("handle", "ok")] += 7
    stats.calls[("handle", "out_of_fuel")] += 2
    stats.hostcalls[("kv_get", "ok")] += 3
    stats.hostcalls[("secret_get", "denied")] += 1
    stats.http_requests["refused"] += 4
    stats.http_requests["not-an-outcome!"] += 1
    stats.call_duration.observe(0.0002)
    stats.call_duration.observe(0.3)
    stats.fuel_consumed = 12345
    stats.restarts = 2
    stats.log_dropped = 9
    source = StaticSource([_view("hello", "running", stats), _view("bad", "quarantined")])
    r = _registry(source)
    info = {"plugin": "hello", "version": "1.2.0", "sha256": "ab" * 32}
    assert r.get_sample_value("forgeone_plugin_info", info) == 1
    assert r.get_sample_value("forgeone_plugin_up", {"plugin": "hello"}) == 1
    assert r.get_sample_value("forgeone_plugin_up", {"plugin": "bad"}) == 0
    quarantined = {"plugin": "bad", "state": "quarantined"}
    assert r.get_sample_value("forgeone_plugin_state", quarantined) == 1
    assert r.get_sample_value("forgeone_plugin_state", {"plugin": "bad", "state": "running"}) == 0
    calls = {"plugin": "hello", "export": "handle", "outcome": "out_of_fuel"}
    assert r.get_sample_value("forgeone_plugin_calls_total", calls) == 2
    host = {"plugin": "hello", "function": "secret_get", "outcome": "denied"}
    assert r.get_sample_value("forgeone_hostcalls_total", host) == 1
    http = {"plugin": "hello", "outcome": "refused"}
    assert r.get_sample_value("forgeone_plugin_http_requests_total", http) == 4
    other = {"plugin": "hello", "outcome": "other"}  # bounded: an unknown value is "other"
    assert r.get_sample_value("forgeone_plugin_http_requests_total", other) == 1
    bucket = {"plugin": "hello", "le": "0.00025"}
    assert r.get_sample_value("forgeone_plugin_call_duration_seconds_bucket", bucket) == 1
    inf = {"plugin": "hello", "le": "+Inf"}
    assert r.get_sample_value("forgeone_plugin_call_duration_seconds_bucket", inf) == 2
    total = r.get_sample_value("forgeone_plugin_call_duration_seconds_sum", {"plugin": "hello"})
    assert total == pytest.approx(0.3002)
    assert r.get_sample_value("forgeone_plugin_restarts_total", {"plugin": "hello"}) == 2
    assert r.get_sample_value("forgeone_plugin_memory_bytes", {"plugin": "hello"}) == 131072
    assert r.get_sample_value("forgeone_plugin_fuel_consumed_total", {"plugin": "hello"}) == 12345
    assert r.get_sample_value("forgeone_plugin_log_dropped_total", {"plugin": "hello"}) == 9


def test_daemon_metrics() -> None:
    daemon = DaemonStats()
    daemon.swaps[("hello", "upgraded")] += 3
    daemon.swaps[("hello", "rolled_back")] += 1
    daemon.swap_duration.observe(0.02)
    daemon.rejected["untrusted_key"] += 4
    daemon.audit_events["plugin.installed"] += 5
    daemon.journald_failures = 6
    daemon.control_requests[("pause", "ok")] += 1
    r = _registry(StaticSource([], daemon))
    assert (
        r.get_sample_value("forgeone_swaps_total", {"plugin": "hello", "outcome": "upgraded"}) == 3
    )
    assert r.get_sample_value("forgeone_swap_duration_seconds_count") == 1
    assert r.get_sample_value("forgeone_artifacts_rejected_total", {"reason": "untrusted_key"}) == 4
    assert r.get_sample_value("forgeone_audit_events_total", {"event": "plugin.installed"}) == 5
    assert r.get_sample_value("forgeone_journald_failures_total") == 6
    ctl = {"action": "pause", "code": "ok"}
    assert r.get_sample_value("forgeone_control_requests_total", ctl) == 1


def test_unbounded_label_values_collapse_to_other() -> None:
    stats = PluginStats()
    stats.calls[("handle", "weird outcome: with spaces and 'quotes'")] += 1
    stats.calls[("handle", "ERR\n")] += 1
    for i in range(40):
        stats.hostcalls[(f"made_up_{i}", "ok")] += 1
    daemon = DaemonStats()
    for i in range(40):
        daemon.rejected[f"reason_{i}"] += 1
    r = _registry(StaticSource([_view("hello", "running", stats)], daemon))
    other = {"plugin": "hello", "export": "handle", "outcome": "other"}
    assert r.get_sample_value("forgeone_plugin_calls_total", other) == 2
    families = {m.name: m for m in r.collect()}
    functions = {s.labels["function"] for s in families["forgeone_hostcalls"].samples}
    assert len(functions) == 16 + 1  # 16 extra identifiers, then "other"
    other_fn = {"plugin": "hello", "function": "other", "outcome": "ok"}
    assert r.get_sample_value("forgeone_hostcalls_total", other_fn) == 24
    reasons = {s.labels["reason"] for s in families["forgeone_artifacts_rejected"].samples}
    assert len(reasons) == 17
    assert sum(s.value for s in families["forgeone_artifacts_rejected"].samples) == 40


def test_audit_chain_metrics() -> None:
    audit = FakeAudit(VerifyResult(False, 10, 7, "edited"), head_seq=12, write_failures=1)
    r = _registry(StaticSource(), audit)
    assert r.get_sample_value("forgeone_audit_chain_ok") == 0
    assert r.get_sample_value("forgeone_audit_head_seq") == 12
    assert r.get_sample_value("forgeone_audit_write_failures_total") == 1
    audit.last_verify = VerifyResult(True, 12)
    assert r.get_sample_value("forgeone_audit_chain_ok") == 1


def test_audit_write_metrics_follow_the_outage() -> None:
    outage = Outage()
    registry = CollectorRegistry()
    registry.register(ForgeonedCollector(StaticSource(), None, outage))
    unwritten = "forgeone_audit_records_unwritten_total"
    assert registry.get_sample_value("forgeone_audit_write_ok") == 1
    assert registry.get_sample_value(unwritten, {"outcome": "refused"}) == 0
    outage.failed("plugin.paused", "No space left on device", 100.0, refused=True)
    outage.failed("hostcall.denied", "No space left on device", 101.0)
    assert registry.get_sample_value("forgeone_audit_write_ok") == 0
    assert registry.get_sample_value(unwritten, {"outcome": "refused"}) == 1
    assert registry.get_sample_value(unwritten, {"outcome": "lost"}) == 1
    outage.gap_event(102.0)
    assert registry.get_sample_value("forgeone_audit_write_ok") == 0  # gap not yet durable
    outage.finish()
    assert registry.get_sample_value("forgeone_audit_write_ok") == 1
    assert registry.get_sample_value(unwritten, {"outcome": "lost"}) == 1  # a counter


def test_server_serves_metrics_on_loopback_only_path() -> None:
    server = MetricsServer("127.0.0.1:0", StaticSource([_view("hello", "running")]))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            body = response.read().decode()
        assert 'forgeone_plugin_up{plugin="hello"} 1\n' in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/other", timeout=10)
        assert err.value.code == 404
        err.value.close()
    finally:
        server.close()
        server.close()


@pytest.mark.parametrize("listen", ["9464", "host:port", "127.0.0.1:99999"])
def test_bad_listen_address_is_a_config_error(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen must be HOST:PORT"):
        MetricsServer(listen, StaticSource())


def test_busy_port_is_a_config_error() -> None:
    first = MetricsServer("127.0.0.1:0", StaticSource())
    try:
        with pytest.raises(ConfigError, match="cannot listen"):
            MetricsServer(f"127.0.0.1:{first.port}", StaticSource())
    finally:
        first.close()


def _samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_fast_renderer_shows_exactly_what_prometheus_client_shows() -> None:
    stats = PluginStats()
    stats.calls[("handle", "ok")] += 3
    stats.call_duration.observe(0.02)
    daemon = DaemonStats()
    daemon.swaps[("hello", "failed")] += 1
    daemon.swap_duration.observe(1.5)
    daemon.rejected["unsigned"] += 2
    odd = PluginView("odd", 'v"1\\\n', "ef" * 32, "paused", 1, PluginStats())
    source = StaticSource([_view("hello", "running", stats), odd], daemon)
    audit = FakeAudit(VerifyResult(True, 5), head_seq=5)
    collector = ForgeonedCollector(source, audit)
    registry = CollectorRegistry()
    registry.register(collector)
    fast = render_text(collector.model.families()).decode()
    reference = generate_latest(registry).decode()
    assert _samples(fast) == _samples(reference)
    assert len(_samples(fast)) > 90

    def types(text: str) -> set[tuple[str, str, str]]:
        return {(f.name, f.type, f.documentation) for f in text_string_to_metric_families(text)}

    assert types(fast) == types(reference)
