"""Operator actions through the daemon's ControlBackend, and its metrics source."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import pytest
from daemon_kit import Env, drop, in_process, plugin

from forgeoned.core.lifecycle import State
from forgeoned.errors import (
    ArtifactError,
    ConflictError,
    NotFoundError,
    PluginPausedError,
    PluginTrap,
)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    drop(e.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    return e


def test_pause_holds_calls_and_resume_answers_them(env: Env) -> None:
    with in_process(env) as d:
        backend = d.daemon.backend
        backend.pause("hello", "ops")
        assert d.view("hello").state == "paused"
        with pytest.raises(PluginPausedError):
            d.invoke("hello", b"now")  # fails at once: nobody asked to wait
        out: list[bytes] = []
        t = threading.Thread(target=lambda: out.append(d.invoke("hello", b"held", wait_s=10)))
        t.start()
        assert d.parts.plugins.host("hello").wait_held(1, 10)
        backend.resume("hello", "ops")
        t.join(10)
        assert out == [b"hello@1.0.0:held"]
        assert d.events.labels("hello")[-2:] == ["plugin.paused", "plugin.resumed"]
        assert d.events.wait("plugin.paused", "hello")[0].actor == "ops"


def test_restart_is_a_fresh_instance_and_audited(env: Env) -> None:
    with in_process(env) as d:
        before = d.parts.plugins.host("hello").current
        d.daemon.backend.restart("hello", "ops")
        after = d.parts.plugins.host("hello").current
        assert after is not before
        assert d.invoke("hello") == b"hello@1.0.0:x"
        [event] = d.events.wait("plugin.restarted", "hello")
        assert event.reason == "operator"
        assert d.view("hello").stats.restarts == 1


def test_install_writes_into_plugins_d_and_rejects_without_writing(env: Env) -> None:
    with in_process(env) as d:
        view = d.daemon.backend.install(plugin("hello", "2.0.0"), "hello-2.wasm", "ops")
        assert view is not None and view.version == "2.0.0"
        assert (env.plugins / "hello-2.wasm").exists()
        assert d.invoke("hello") == b"hello@2.0.0:x"
        before = sorted(p.name for p in env.plugins.iterdir())
        with pytest.raises(ArtifactError):
            d.daemon.backend.install(plugin("hello", "3.0.0", signed=False), "h3.wasm", "ops")
        assert sorted(p.name for p in env.plugins.iterdir()) == before
        assert d.invoke("hello") == b"hello@2.0.0:x"


def test_unsafe_install_file_name_is_replaced(env: Env) -> None:
    with in_process(env) as d:
        d.daemon.backend.install(plugin("other", "1.0.0"), "../../etc/passwd", "ops")
        assert (env.plugins / "other-1.0.0.wasm").exists()
        assert not (env.root / "etc/passwd").exists()


def test_remove_and_unknown_names(env: Env) -> None:
    with in_process(env) as d:
        with pytest.raises(NotFoundError):
            d.daemon.backend.pause("nope", "ops")
        with pytest.raises(ConflictError):
            d.daemon.backend.resume("hello", "ops")  # not paused
        d.daemon.backend.remove("hello", "ops")
        assert not (env.plugins / "hello.wasm").exists()
        with pytest.raises(NotFoundError):
            d.invoke("hello")


def test_allow_downgrade_activates_exactly_that_version(env: Env) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "2.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "hello.wasm", plugin("hello", "1.5.0"))
        d.events.wait("plugin.rejected", "hello", reason="downgrade")
        assert d.invoke("hello") == b"hello@2.0.0:x"
        d.daemon.backend.allow_downgrade("hello", "1.5.0", "admin")
        assert d.events.wait("plugin.downgrade_allowed", "hello")[0].actor == "admin"
        assert d.invoke("hello") == b"hello@1.5.0:x"
        state = env.state()
        assert state["active"]["hello"]["version"] == "1.5.0"
        assert state["overrides"] == {}  # used up by the activation


def test_every_audited_control_action_records_its_actor(env: Env) -> None:
    with in_process(env) as d:
        backend = d.daemon.backend
        backend.install(plugin("hello", "2.0.0"), "hello-2.wasm", "alice")
        backend.restart("hello", "bob")
        backend.reload("carol")
        backend.install(plugin("other", "1.0.0"), "other.wasm", "dave")
        backend.remove("other", "erin")
        assert d.events.wait("plugin.upgraded", "hello")[0].actor == "alice"
        assert d.events.wait("plugin.restarted", "hello")[0].actor == "bob"
        assert d.events.wait("daemon.reloaded")[0].actor == "carol"
        assert d.events.wait("plugin.installed", "other")[0].actor == "dave"
        assert d.events.wait("plugin.removed", "other")[0].actor == "erin"
        on_disk = {(e["event"], e.get("actor")) for e in env.audit_events()}
        assert {("plugin.upgraded", "alice"), ("daemon.reloaded", "carol")} <= on_disk


def test_reset_clears_a_quarantine(env: Env) -> None:
    env.write_config("[restart]\nmax_failures = 1\nbackoff_initial_s = 0.01\njitter = 0")
    with in_process(env) as d:
        with pytest.raises(ConflictError):
            d.daemon.backend.reset("hello", "ops")  # running, not quarantined
        drop(env.plugins, "hello.wasm", plugin("hello", "1.1.0", handle_extra="unreachable"))
        d.events.wait("plugin.upgraded", "hello")
        host = d.parts.plugins.host("hello")
        for n in (1, 2):
            with pytest.raises(PluginTrap):
                d.invoke("hello")
            d.events.wait("plugin.failed", "hello", count=n)
            if n == 1:
                assert host.wait_for(State.RUNNING, 10)
        d.events.wait("plugin.quarantined", "hello")
        assert host.wait_for(State.QUARANTINED, 10)  # audited, persisted, then shown
        assert env.state()["quarantined"] == ["hello"]
        d.daemon.backend.reset("hello", "ops")
        assert host.wait_for(State.RUNNING, 10)
        assert env.state()["quarantined"] == []
        assert d.events.wait("plugin.reset", "hello")[0].actor == "ops"


def test_metrics_count_rejections_by_reason(env: Env) -> None:
    text = env.config.read_text()
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))
    with in_process(env) as d:
        drop(env.plugins, "hello.wasm", plugin("hello", "2.0.0", signed=False))
        d.events.wait("plugin.rejected", reason="unsigned")
        port = d.daemon.metrics.port
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        )
        lines = body.splitlines()
        assert 'forgeone_artifacts_rejected_total{reason="unsigned"} 1' in lines
        assert 'forgeone_plugin_up{plugin="hello"} 1' in lines
        assert d.invoke("hello") == b"hello@1.0.0:x"
