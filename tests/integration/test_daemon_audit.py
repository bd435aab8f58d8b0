"""What the daemon writes into (and checks of) its audit log: signers of each activated version,
``plugin.stopped`` on SIGTERM, and the hash-chain verification at start and on a timer."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path

import pytest
from daemon_kit import Daemon, Env, drop, in_process, plugin

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.metrics.server import render_text
from forgeoned.daemon.parts import status_line


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    drop(e.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    return e


def _metrics_on(env: Env) -> None:
    text = env.config.read_text()
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))


def _scrape(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode()).splitlines()


def _tamper(env: Env, old: bytes, new: bytes) -> None:
    """Change bytes of one stored audit line in place (same length, no append raced)."""
    assert len(old) == len(new)
    path = env.root / "state/audit/audit-000001.jsonl"
    data = path.read_bytes()
    at = data.index(old)
    with path.open("r+b") as f:
        f.seek(at)
        f.write(new)


def test_activations_record_their_signers_for_the_compliance_report(env: Env) -> None:
    with in_process(env) as d:
        drop(env.plugins, "hello.wasm", plugin("hello", "2.0.0"))
        [upgraded] = d.events.wait("plugin.upgraded", "hello")
        assert upgraded.details == {"signers": ["test"], "signed": True}
        drop(env.plugins, "hello-3.wasm", plugin("hello", "3.0.0", init=1))
        [rolled] = d.events.wait("plugin.rolled_back", "hello")
        assert rolled.details["signers"] == ["test"]
        assert rolled.details["serving"]["version"] == "2.0.0"
        with ControlClient(env.socket, timeout=60) as client:
            report = json.loads(client.compliance(None, "json"))
    stored = [e for e in env.audit_events() if e["event"] == "plugin.installed"]
    assert [e["details"] for e in stored] == [{"signers": ["test"], "signed": True}]
    versions = [(v["version"], v["signers"]) for v in report["versions"] if v["plugin"] == "hello"]
    assert ("1.0.0", ["test"]) in versions and ("2.0.0", ["test"]) in versions


def test_sigterm_audits_each_plugin_stopped_then_the_daemon(env: Env) -> None:
    drop(env.plugins, "other.wasm", plugin("other", "1.0.0"))
    d = Daemon(env)
    try:
        d.ready()
        assert d.invoke("other") == b"other@1.0.0:x"
    finally:
        code = d.stop()
    assert code == 0
    events = env.audit_events()
    tail = [(e["event"], e.get("plugin"), e.get("version")) for e in events]
    stops = [t for t in tail if t[0] == "plugin.stopped"]
    assert sorted(stops) == [
        ("plugin.stopped", "hello", "1.0.0"),
        ("plugin.stopped", "other", "1.0.0"),
    ]
    last_stop = max(i for i, t in enumerate(tail) if t[0] == "plugin.stopped")
    stopped_at = [i for i, t in enumerate(tail) if t[0] == "daemon.stopped"]
    assert len(stopped_at) == 1 and stopped_at[0] > last_stop
    assert env.state()["active"]["hello"]["version"] == "1.0.0"  # the set survives a stop


def test_broken_chain_at_start_is_loud_and_exported_but_the_daemon_serves(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with in_process(env):
        pass
    _tamper(env, b" restored; ", b" restoreD; ")
    audit_before = (env.root / "state/audit/audit-000001.jsonl").read_bytes()
    _metrics_on(env)
    with caplog.at_level(logging.CRITICAL, logger="forgeoned.audit"), in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
        result = d.parts.audit_log.last_verify
        assert result is not None and not result.ok and result.first_bad_seq is not None
        assert "AUDIT CHAIN BROKEN" in status_line(d.parts)
        lines = _scrape(d.daemon.metrics.port)
        assert "forgeone_audit_chain_ok 0" in lines
    assert [r for r in caplog.records if "AUDIT CHAIN BROKEN" in r.getMessage()]
    after = (env.root / "state/audit/audit-000001.jsonl").read_bytes()
    assert after.startswith(audit_before)  # the evidence is kept as it was, only appended to


def test_periodic_check_sees_tampering_while_running(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.write_config(audit="verify_interval_s = 0.05")
    _metrics_on(env)
    with caplog.at_level(logging.CRITICAL, logger="forgeoned.audit"), in_process(env) as d:
        chain = d.parts.chain
        assert chain.last is not None and chain.last.ok
        assert "forgeone_audit_chain_ok 1" in _scrape(d.daemon.metrics.port)
        model = d.daemon.metrics.collector.model  # what /metrics renders (uncached here)
        _tamper(env, b" restored; ", b" restoreD; ")
        runs = chain.runs
        assert chain.wait_runs(runs + 2, 30)
        assert chain.last is not None and not chain.last.ok
        assert "forgeone_audit_chain_ok 0" in render_text(model.families()).decode().splitlines()
        assert d.invoke("hello") == b"hello@1.0.0:x"
    broken = [r for r in caplog.records if "AUDIT CHAIN BROKEN" in r.getMessage()]
    assert len(broken) == 1  # once per breakage, not at every check
