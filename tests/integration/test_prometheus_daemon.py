"""A real Prometheus scrapes a real forgeoned daemon and fires the quarantined alert.

The daemon runs as ``python -m forgeoned.daemon`` with ``[metrics]`` on a free loopback port
and a small restart budget; one plugin's ``start`` traps, so the daemon restarts it until the
budget is spent and quarantines it. Prometheus scrapes the daemon's ``metrics.listen`` with
forgeoned's rules file loaded, and its API must show ``ForgeonePluginQuarantined`` firing for
that plugin only, while a healthy plugin next to it reports ``forgeone_plugin_up 1``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import KEY, Daemon, Env, drop, manifest, plugin, plugin_wat
from prom_kit import firing_alerts, free_port, prometheus, query
from waiting import poll_until

from forgeoned.cli.devtools import make_signed_plugin

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]
HEALTHY_START = '(func (export "start") (result i32) i32.const 0)'
TRAPPING_START = '(func (export "start") (result i32) unreachable)'


def _broken_audit(d: Daemon) -> list[dict[str, Any]] | None:
    """The audit entries about ``broken`` once the last is its quarantine, else None."""
    try:
        audit = [e for e in d.env.audit_events() if e.get("plugin") == "broken"]
    except ValueError:  # a line being written right now
        return None
    return audit if audit and audit[-1]["event"] == "plugin.quarantined" else None


def _broken_plugin() -> bytes:
    text = plugin_wat("broken@1.0.0")
    assert HEALTHY_START in text
    m = manifest("broken", "1.0.0", capabilities={"log": True})
    return make_signed_plugin(text.replace(HEALTHY_START, TRAPPING_START), m, KEY)


def _config(env: Env, metrics_port: int) -> None:
    env.config.write_text(
        f"""mode = "production"
plugins_dir = "plugins.d"
state_dir = "state"
trust_dir = "trusted.d"
cache_dir = "cache"
drain_timeout_s = 2.0
rescan_interval_s = 30
debounce_ms = 20
[restart]
max_failures = 2
window_s = 60
backoff_initial_s = 0.01
backoff_max_s = 0.05
jitter = 0
[control]
socket = "run/control.sock"
[metrics]
enabled = true
listen = "127.0.0.1:{metrics_port}"
[audit]
journald = false
"""
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    (tmp_path / "d").mkdir()
    env = Env(tmp_path / "d")
    metrics_port = free_port()
    _config(env, metrics_port)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    drop(env.plugins, "broken.wasm", _broken_plugin())
    d = Daemon(env)
    try:
        d.ready()
        yield d, metrics_port
    finally:
        code = d.stop()
        assert code == 0, d.stderr()


@pytest.fixture
def prom(tmp_path: Path, daemon: tuple[Daemon, int]) -> Iterator[str]:
    with prometheus(tmp_path, daemon[1]) as base:
        yield base


def test_daemon_quarantines_a_trapping_start_and_prometheus_fires_the_alert(
    daemon: tuple[Daemon, int], prom: str
) -> None:
    d, _ = daemon
    d.wait_until(
        lambda status: status.get("broken", {}).get("state") == "quarantined",
        60,
        "broken quarantined",
    )
    assert d.status()["hello"]["state"] == "running"
    # The event is durable before the state shows quarantined; read it back from the log.
    audit = poll_until(lambda: _broken_audit(d), 30, "plugin.quarantined in the audit log")
    failed = [e for e in audit if e["event"] == "plugin.failed"]
    assert len(failed) == 3  # max_failures = 2: the third failure in the window quarantines
    assert all("'start' trapped" in e["message"] for e in failed), failed
    assert [e["event"] for e in audit].count("plugin.restarted") == 2

    base = prom
    firing = poll_until(
        lambda: firing_alerts(base, "ForgeonePluginQuarantined"), 90, "quarantine alert",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert [a["labels"]["plugin"] for a in firing] == ["broken"]
    assert firing[0]["labels"]["severity"] == "critical"
    up = {r["metric"]["plugin"]: r["value"][1] for r in query(base, "forgeone_plugin_up")}
    assert up == {"hello": "1", "broken": "0"}
    restarts = query(base, 'forgeone_plugin_restarts_total{plugin="broken"}')
    assert restarts[0]["value"][1] == "2"
    assert firing_alerts(base, "ForgeoneAuditChainBroken") == []
    # a quarantine makes the plugin's review due at once ("after every major incident")
    overdue = poll_until(
        lambda: firing_alerts(base, "ForgeonePluginReviewOverdue"), 90, "review overdue alert",
        interval=0.25, tolerate=(OSError,),
    )  # fmt: skip
    assert [a["labels"]["plugin"] for a in overdue] == ["broken"]
