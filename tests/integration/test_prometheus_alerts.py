"""A real Prometheus scrapes the MetricsServer, evaluates forgeoned's rules and fires alerts."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prom_kit import RULES, firing_alerts, prometheus, query
from waiting import poll_until

from forgeoned.adapters.audit.outage import Outage
from forgeoned.adapters.metrics.model import StaticSource
from forgeoned.adapters.metrics.server import MetricsServer
from forgeoned.core.audit_chain import VerifyResult
from forgeoned.core.stats import PluginStats, PluginView

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]


@dataclass
class Audit:
    last_verify: VerifyResult | None = field(default_factory=lambda: VerifyResult(True, 10))
    head_seq: int = 10
    write_failures: int = 0


@pytest.fixture
def outage() -> Outage:
    return Outage()


@pytest.fixture
def stack(tmp_path: Path, outage: Outage) -> Iterator[tuple[str, StaticSource, Audit]]:
    stats = PluginStats()
    stats.http_requests["refused"] = 0  # the series exists before anything is refused
    view = PluginView("hello", "1.0.0", "ab" * 32, "running", 65536, stats)
    broken = PluginView("broken", "2.0.0", "cd" * 32, "quarantined", 0, PluginStats())
    now = time.time()
    reviews = {"hello": now + 90 * 86400, "broken": now - 1}  # broken: due (an incident)
    source, audit = StaticSource([view, broken], reviews=reviews), Audit()
    metrics = MetricsServer("127.0.0.1:0", source, audit=audit, writes=outage, min_interval_s=0.0)
    metrics.start()
    try:
        with prometheus(tmp_path, metrics.port) as base:
            yield base, source, audit
    finally:
        metrics.close()


def test_quarantined_plugin_fires_its_alert(stack: tuple[str, StaticSource, Audit]) -> None:
    base, _, _ = stack
    firing = poll_until(
        lambda: firing_alerts(base, "ForgeonePluginQuarantined"), 90, "quarantine alert",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert [a["labels"]["plugin"] for a in firing] == ["broken"]
    assert firing[0]["labels"]["severity"] == "critical"
    assert query(base, 'forgeone_plugin_up{plugin="hello"}')[0]["value"][1] == "1"
    assert firing_alerts(base, "ForgeoneAuditChainBroken") == []


def test_an_overdue_review_fires_its_alert(stack: tuple[str, StaticSource, Audit]) -> None:
    base, _, _ = stack
    firing = poll_until(
        lambda: firing_alerts(base, "ForgeonePluginReviewOverdue"), 90, "review alert",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert [a["labels"]["plugin"] for a in firing] == ["broken"]
    assert firing[0]["labels"]["severity"] == "warning"


def test_broken_audit_chain_fires_its_alert(stack: tuple[str, StaticSource, Audit]) -> None:
    base, _, audit = stack
    poll_until(
        lambda: firing_alerts(base, "ForgeonePluginQuarantined"), 90, "first evaluation",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    audit.last_verify = VerifyResult(False, 10, 4, "edited")
    firing = poll_until(
        lambda: firing_alerts(base, "ForgeoneAuditChainBroken"), 90, "chain alert",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert firing[0]["labels"]["severity"] == "critical"


def test_audit_writes_failing_fire_the_degraded_alert(
    stack: tuple[str, StaticSource, Audit], outage: Outage
) -> None:
    base, _, _ = stack
    poll_until(
        lambda: firing_alerts(base, "ForgeonePluginQuarantined"), 90, "first evaluation",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert firing_alerts(base, "ForgeoneAuditDegraded") == []
    outage.failed("plugin.paused", "cannot write the audit log: No space left on device", 1.0)
    firing = poll_until(
        lambda: firing_alerts(base, "ForgeoneAuditDegraded"), 90, "degraded alert",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert firing[0]["labels"]["severity"] == "critical"
    assert query(base, "forgeone_audit_write_ok")[0]["value"][1] == "0"


def test_refused_outbound_requests_fire_their_alert(
    stack: tuple[str, StaticSource, Audit],
) -> None:
    base, source, _ = stack
    series = 'forgeone_plugin_http_requests_total{plugin="hello",outcome="refused"}'
    poll_until(lambda: query(base, series), 90, "the zero sample", interval=0.25,
               tolerate=(OSError,))  # fmt: skip
    assert firing_alerts(base, "ForgeoneOutboundRefused") == []
    source.views[0].stats.http_requests["refused"] += 3
    firing = poll_until(
        lambda: firing_alerts(base, "ForgeoneOutboundRefused"), 90, "outbound alert",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert [a["labels"]["plugin"] for a in firing] == ["hello"]
    assert firing[0]["labels"]["severity"] == "warning"


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 12 rules found" in done.stdout
