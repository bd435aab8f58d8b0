"""A real Prometheus scrapes the MetricsServer, evaluates forgeoned's rules and fires alerts."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from forgeoned.adapters.metrics import MetricsServer
from forgeoned.core.audit_chain import VerifyResult
from forgeoned.core.stats import DaemonStats, PluginStats, PluginView

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]
RULES = Path(__file__).resolve().parents[2] / "packaging" / "prometheus" / "forgeoned-rules.yml"


@dataclass
class Source:
    views: list[PluginView] = field(default_factory=list)
    stats: DaemonStats = field(default_factory=DaemonStats)

    def plugin_views(self) -> list[PluginView]:
        return self.views

    def daemon_stats(self) -> DaemonStats:
        return self.stats


@dataclass
class Audit:
    last_verify: VerifyResult | None = field(default_factory=lambda: VerifyResult(True, 10))
    head_seq: int = 10
    write_failures: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.25)):
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        pause.wait(0.25)
    pytest.fail(f"timed out waiting for {what}")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Source, Audit]]:
    view = PluginView("hello", "1.0.0", "ab" * 32, "running", 65536, PluginStats())
    broken = PluginView("broken", "2.0.0", "cd" * 32, "quarantined", 0, PluginStats())
    source, audit = Source([view, broken]), Audit()
    metrics = MetricsServer("127.0.0.1:0", source, audit=audit, min_interval_s=0.0)
    metrics.start()
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        "  - job_name: forgeoned\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics.port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(
            lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200, 60, "ready"
        )
        yield base, source, audit
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        metrics.close()


def _alerts(base: str, name: str) -> list[dict[str, Any]]:
    data = _get(f"{base}/api/v1/alerts")["data"]["alerts"]
    return [a for a in data if a["labels"]["alertname"] == name and a["state"] == "firing"]


def test_quarantined_plugin_fires_its_alert(stack: tuple[str, Source, Audit]) -> None:
    base, _, _ = stack
    firing = _wait(lambda: _alerts(base, "ForgeonePluginQuarantined"), 90, "quarantine alert")
    assert [a["labels"]["plugin"] for a in firing] == ["broken"]
    assert firing[0]["labels"]["severity"] == "critical"
    query = urllib.parse.quote('forgeone_plugin_up{plugin="hello"}')
    result = _get(f"{base}/api/v1/query?query={query}")["data"]["result"]
    assert result[0]["value"][1] == "1"
    assert _alerts(base, "ForgeoneAuditChainBroken") == []


def test_broken_audit_chain_fires_its_alert(stack: tuple[str, Source, Audit]) -> None:
    base, _, audit = stack
    _wait(lambda: _alerts(base, "ForgeonePluginQuarantined"), 90, "first evaluation")
    audit.last_verify = VerifyResult(False, 10, 4, "edited")
    firing = _wait(lambda: _alerts(base, "ForgeoneAuditChainBroken"), 90, "chain alert")
    assert firing[0]["labels"]["severity"] == "critical"


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout
