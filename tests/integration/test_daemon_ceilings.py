"""Operator ceilings through the real daemon: a manifest over a ceiling is rejected (audited,
counted, refused by the API) while the running version keeps serving; the compiled code size
is capped where the compile result is known; a reload applies new ceilings."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from daemon_kit import Env, drop, in_process, plugin

from forgeoned.adapters.control.client import ControlClient
from forgeoned.errors import LimitExceededError

MIB = 1 << 20


def _metric_lines(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode()).splitlines()


def _with_metrics(env: Env) -> None:
    text = env.config.read_text()
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))


def test_an_upgrade_over_a_ceiling_is_rejected_and_the_running_version_keeps_serving(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    env.write_config(f"[limits]\nmemory_bytes = {2 * MIB}\ninstances = 2")
    _with_metrics(env)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0", limits={"memory_bytes": MIB}))
    with in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
        before = env.state()
        greedy = plugin("hello", "2.0.0", limits={"memory_bytes": 64 * MIB, "instances": 2})
        drop(env.plugins, "hello.wasm", greedy)  # replaces the running version's file
        [event] = d.events.wait("plugin.rejected", "hello", reason="over_ceiling")
        assert event.message.endswith(
            f"plugin 'hello': memory_bytes = {64 * MIB} is over the ceiling {2 * MIB} "
            "(limits.memory_bytes)"
        )
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.view("hello").state == "running" and d.view("hello").version == "1.0.0"
        assert env.state() == before
        assert d.parts.stats.rejected["over_ceiling"] == 1
        lines = _metric_lines(d.daemon.metrics.port)
        assert 'forgeone_artifacts_rejected_total{reason="over_ceiling"} 1' in lines
        # the API refuses the same artifact before writing anything, with its own code
        with ControlClient(env.socket, timeout=60) as client:
            with pytest.raises(LimitExceededError, match="over the ceiling"):
                client.install(greedy, "hello-2.wasm")
        assert not (env.plugins / "hello-2.wasm").exists()
        assert d.parts.stats.rejected["over_ceiling"] == 2  # counted like a dropped file
    stored = [e for e in env.audit_events() if e["event"] == "plugin.rejected"]
    # the dropped file, then the refused upload, each a plugin.rejected with the same code
    assert [e["reason"] for e in stored] == ["over_ceiling", "over_ceiling"]
    assert stored[1]["details"] == {"file": "hello-2.wasm", "upload": True}
    assert stored[1]["actor"] and stored[1]["plugin"] == "hello"


def test_a_per_plugin_ceiling_replaces_the_daemon_wide_one(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write_config("[limits]\ninstances = 1\n[limits.plugins.wide]\ninstances = 4")
    drop(env.plugins, "wide.wasm", plugin("wide", "1.0.0", limits={"instances": 4}))
    drop(env.plugins, "narrow.wasm", plugin("narrow", "1.0.0", limits={"instances": 2}))
    with in_process(env) as d:
        assert d.invoke("wide") == b"wide@1.0.0:x"
        assert d.view("wide").instances == 4
        rejected = [e for e in env.audit_events() if e["event"] == "plugin.rejected"]
        assert [(e["plugin"], e["reason"]) for e in rejected] == [("narrow", "over_ceiling")]
        assert "instances = 2 is over the ceiling 1 (limits.instances)" in rejected[0]["message"]
        assert "narrow" not in d.parts.plugins


def test_compiled_code_over_its_ceiling_is_rejected(tmp_path: Path) -> None:
    env = Env(tmp_path)
    # any real module compiles to more than 1000 bytes of native code and metadata
    env.write_config("[limits]\ncode_bytes = 1000\n[limits.plugins.big]\ncode_bytes = 1073741824")
    drop(env.plugins, "big.wasm", plugin("big", "1.0.0"))
    drop(env.plugins, "small.wasm", plugin("small", "1.0.0"))
    with in_process(env) as d:
        assert d.invoke("big") == b"big@1.0.0:x"
        [event] = d.events.wait("plugin.rejected", "small", reason="over_ceiling")
        assert "code_bytes = " in event.message and "(limits.code_bytes)" in event.message
        assert "small" not in env.state()["active"]


def test_a_reload_that_lowers_a_ceiling_withdraws_the_versions_above_it(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0", limits={"instances": 2}))
    drop(env.plugins, "other.wasm", plugin("other", "1.0.0"))
    with in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
        env.write_config("[limits]\ninstances = 1")
        d.daemon.loop.call(d.daemon.reloader.reload)
        assert "hello" not in d.parts.plugins  # like a revoked key: not left running
        assert d.invoke("other") == b"other@1.0.0:x"
        # the running version withdrawn, then its file refused at the rescan
        events = d.events.wait("plugin.rejected", "hello", count=2, reason="over_ceiling")
        assert all("instances = 2 is over the ceiling 1" in e.message for e in events)
