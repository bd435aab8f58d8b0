"""Issue 11, items 1, 2 and the status part of 6, replayed through the real daemon (in
process: real wasmtime, files, watcher, state file and audit log).

Each test checks the promised behaviour and that nothing else changed: the active version
answers, the state file says the same, and the audit chain is intact and tells the same story.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from abi_wat import lifecycle_exports
from daemon_kit import KEY, Daemon, Env, InProcess, drop, in_process, manifest, plugin

from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.core.lifecycle import State
from forgeoned.errors import PluginStatusError, PluginTrap, RollbackError

FAST_RESTARTS = "[restart]\nmax_failures = 2\nbackoff_initial_s = 0.01\njitter = 0"
TRAP_ON_BANG = """(if (i32.and (i32.gt_u (local.get $l) (i32.const 0))
                    (i32.eq (i32.load8_u (local.get $p)) (i32.const 33)))
      (then unreachable))"""  # an input starting with "!" traps


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = Env(tmp_path)
    env.write_config(FAST_RESTARTS)
    return env


def echo(version: str, **wat: Any) -> bytes:
    """``echo`` whose handle answers ``echo@VERSION:input`` and traps on ``!…``."""
    return plugin("echo", version, handle_extra=TRAP_ON_BANG, **wat)


def broken_start(name: str, version: str) -> bytes:
    """A plugin whose ``start`` traps (its ``init`` is fine)."""
    text = f"""(module (memory (export "memory") 1)
  {lifecycle_exports({"start": "unreachable"})})"""
    return make_signed_plugin(text, manifest(name, version), KEY)


def chain_ok(d: InProcess) -> list[dict[str, Any]]:
    """The audit log on disk, after checking its chain is intact."""
    assert d.parts.audit_log.verify().ok
    return d.env.audit_events()


def events_of(entries: list[dict[str, Any]], plugin: str) -> list[tuple[str, str | None]]:
    return [(e["event"], e.get("version")) for e in entries if e.get("plugin") == plugin]


def trap(d: InProcess, count: int) -> None:
    """One trap in echo's handle; waits for the count-th plugin.failed."""
    with pytest.raises(PluginTrap):
        d.invoke("echo", b"!")
    d.events.wait("plugin.failed", "echo", count=count)


def test_a_rolled_back_version_never_comes_back(env: Env) -> None:
    """Item 1: restarts, reset, reload and a daemon restart bring back 1.0.0; retry is audited."""
    drop(env.plugins, "echo.wasm", echo("1.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "echo-2.wasm", echo("2.0.0", init=3))
        [rolled] = d.events.wait("plugin.rolled_back", "echo")
        assert (rolled.version, rolled.reason) == ("2.0.0", "status_nonzero")
        assert d.invoke("echo") == b"echo@1.0.0:x"
        host = d.parts.plugins.host("echo")

        trap(d, 1)  # the supervisor restarts 1.0.0, not the rolled-back 2.0.0
        [restarted] = d.events.wait("plugin.restarted", "echo")
        assert restarted.version == "1.0.0"
        assert host.wait_for(State.RUNNING, 10)
        assert d.invoke("echo") == b"echo@1.0.0:x"

        trap(d, 2)
        d.events.wait("plugin.restarted", "echo", count=2)
        assert host.wait_for(State.RUNNING, 10)
        trap(d, 3)  # max_failures = 2: the third failure in the window quarantines
        d.events.wait("plugin.quarantined", "echo")
        assert host.wait_for(State.QUARANTINED, 10)
        d.daemon.backend.reset("echo", "ops")  # reset brings back 1.0.0, which stays up
        assert host.wait_for(State.RUNNING, 10)
        assert d.invoke("echo") == b"echo@1.0.0:x"

        d.daemon.backend.reload("ops")  # a reload does not retry it either
        d.sync()
        assert d.invoke("echo") == b"echo@1.0.0:x"
        assert d.events.labels("echo").count("plugin.rolled_back") == 1
        stats = d.parts.stats
        assert stats.swaps[("echo", "upgraded")] == 0  # restarts are not upgrades
        assert stats.swaps[("echo", "restarted")] == 3  # two by the supervisor, one by reset
        assert stats.swaps[("echo", "rolled_back")] == 1

    state = env.state()
    assert state["active"]["echo"]["version"] == "1.0.0"
    assert state["quarantined"] == [] and state["quarantine_causes"] == {}
    [refused] = state["refused"]["echo"]
    assert (refused["version"], refused["kind"], refused["reason"]) == (
        "2.0.0", "rolled_back", "status_nonzero"
    )  # fmt: skip

    with in_process(env) as d:  # a daemon restart: 1.0.0, and 2.0.0 stays out
        assert d.invoke("echo") == b"echo@1.0.0:x"
        assert "plugin.rolled_back" not in d.events.labels("echo")
        with pytest.raises(PluginStatusError):  # retry: tried at once, and it fails again
            d.daemon.backend.retry("echo", "alice")
        [allowed] = d.events.wait("plugin.retry_allowed", "echo")
        assert (allowed.actor, allowed.version, allowed.reason) == (
            "alice", "2.0.0", "status_nonzero"
        )  # fmt: skip
        d.events.wait("plugin.rolled_back", "echo")
        assert d.invoke("echo") == b"echo@1.0.0:x"
        entries = chain_ok(d)

    story = events_of(entries, "echo")
    assert ("plugin.upgraded", "2.0.0") not in story and ("plugin.installed", "2.0.0") not in story
    assert [v for e, v in story if e == "plugin.restarted"] == ["1.0.0", "1.0.0"]
    assert [v for e, v in story if e == "plugin.rolled_back"] == ["2.0.0", "2.0.0"]
    assert ("plugin.retry_allowed", "2.0.0") in story
    assert [r["version"] for r in env.state()["refused"]["echo"]] == ["2.0.0"]


def test_kill_9_keeps_a_rolled_back_version_out(env: Env) -> None:
    """Item 1 with a real process: after a rollback, kill -9, and the daemon that comes back
    serves 1.0.0 and does not try 2.0.0 again (its status says why)."""
    drop(env.plugins, "echo.wasm", echo("1.0.0"))
    first = Daemon(env)
    try:
        first.ready()
        drop(env.plugins, "echo-2.wasm", echo("2.0.0", init=3))
        first.wait_until(
            lambda s: any(c["status"] == "rolled_back" for c in s["echo"]["candidates"]),
            what="2.0.0 rolled back",
        )
    finally:
        first.kill()
    again = Daemon(env)
    try:
        again.ready()
        assert again.invoke("echo") == b"echo@1.0.0:x"
        entry = again.status()["echo"]
        assert (entry["version"], entry["state"]) == ("1.0.0", "running")
        [cand] = entry["candidates"]
        assert (cand["version"], cand["status"], cand["reason"]) == (
            "2.0.0", "rolled_back", "status_nonzero"
        )  # fmt: skip
        with again.client() as c:
            assert c.audit_verify()["ok"] is True
            c.reload()
        assert again.invoke("echo") == b"echo@1.0.0:x"
    finally:
        assert again.stop() == 0
    rolled = [e for e in env.audit_events() if e["event"] == "plugin.rolled_back"]
    assert [e["version"] for e in rolled] == ["2.0.0"]  # once, before the kill: never again
    assert env.state()["active"]["echo"]["version"] == "1.0.0"


def test_other_bytes_in_place_of_a_refused_file_are_tried(env: Env) -> None:
    drop(env.plugins, "echo.wasm", echo("1.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "echo-2.wasm", echo("2.0.0", init=3))
        d.events.wait("plugin.rolled_back", "echo")
        drop(env.plugins, "echo-2.wasm", echo("2.0.1"))
        d.events.wait("plugin.upgraded", "echo", version="2.0.1")
        assert d.invoke("echo") == b"echo@2.0.1:x"
        assert env.state()["active"]["echo"]["version"] == "2.0.1"
        chain_ok(d)


def test_an_allowed_downgrade_once_active_survives_a_daemon_restart(env: Env) -> None:
    """Item 2: the persisted active version is not refused as a downgrade of itself."""
    drop(env.plugins, "echo.wasm", echo("2.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "echo.wasm", echo("1.0.0"))  # replaces 2.0.0's file
        d.events.wait("plugin.rejected", "echo", reason="downgrade")
        assert d.invoke("echo") == b"echo@2.0.0:x"
        d.daemon.backend.allow_downgrade("echo", "1.0.0", "admin")
        [allowed] = d.events.wait("plugin.downgrade_allowed", "echo")
        assert (allowed.version, allowed.actor) == ("1.0.0", "admin")
        [down] = d.events.wait("plugin.upgraded", "echo", version="1.0.0")
        assert down.reason == "downgrade"  # the trail says which way it went
        assert down.message == "2.0.0 -> 1.0.0 (downgrade, allowed by an admin)"
        assert d.invoke("echo") == b"echo@1.0.0:x"
    state = env.state()
    assert state["active"]["echo"]["version"] == "1.0.0"
    assert state["floors"]["echo"]["version"] == "2.0.0"  # the highest ever activated
    assert state["overrides"] == {}  # good for one activation: this one

    with in_process(env) as d:
        assert d.invoke("echo") == b"echo@1.0.0:x"
        assert "plugin.rejected" not in d.events.labels("echo")
        [started] = d.events.wait("daemon.started")
        assert started.message.startswith("1 plugin restored")
        trap(d, 1)  # and the supervisor brings the same 1.0.0 back
        d.events.wait("plugin.restarted", "echo", version="1.0.0")
        assert d.parts.plugins.host("echo").wait_for(State.RUNNING, 10)
        assert d.invoke("echo") == b"echo@1.0.0:x"
        # a different 1.0.0 is still a downgrade: the override was used up
        drop(env.plugins, "echo-b.wasm", echo("1.0.1"))
        d.events.wait("plugin.rejected", "echo", reason="downgrade", version="1.0.1")
        assert d.invoke("echo") == b"echo@1.0.0:x"
        entries = chain_ok(d)
    assert env.state()["active"]["echo"]["version"] == "1.0.0"
    assert ("plugin.downgrade_allowed", "1.0.0") in events_of(entries, "echo")


def test_status_after_a_rollback_shows_the_candidate_and_the_error_text(env: Env) -> None:
    """Item 6: show no longer keeps an old last_error and silence about the rejected version."""
    drop(env.plugins, "echo.wasm", echo("1.0.0"))
    with in_process(env) as d:
        trap(d, 1)
        d.events.wait("plugin.restarted", "echo")
        assert d.parts.plugins.host("echo").wait_for(State.RUNNING, 10)
        assert d.view("echo").last_error_code == "unreachable"
        drop(env.plugins, "echo-2.wasm", echo("2.0.0", init=3))
        [rolled] = d.events.wait("plugin.rolled_back", "echo")
        d.sync()  # the loop finished that swap (the status is written after its event)
        view = d.view("echo")
        assert (view.version, view.state) == ("1.0.0", "running")
        [cand] = view.candidates
        assert (cand.version, cand.status.value, cand.reason) == (
            "2.0.0", "rolled_back", rolled.reason
        )  # fmt: skip
        assert cand.file == "echo-2.wasm" and "returned status 3" in cand.message
        assert view.last_error == "2.0.0 rolled back: export 'init' returned status 3"
        assert view.last_error_code == "status_nonzero"
        assert d.invoke("echo") == b"echo@1.0.0:x"
        entries = chain_ok(d)
    [stored] = env.state()["refused"]["echo"]
    assert stored["sha256"] == cand.sha256 == rolled.sha256
    assert ("plugin.rolled_back", "2.0.0") in events_of(entries, "echo")


def test_a_quarantined_plugin_shows_its_version_signers_and_cause(env: Env) -> None:
    """Item 6: version, sha256 and signers of a quarantined plugin whose start traps, and
    why it is quarantined; a daemon restart keeps it quarantined and still says why."""
    drop(env.plugins, "ok.wasm", plugin("ok", "1.0.0"))
    drop(env.plugins, "broken.wasm", broken_start("broken", "1.0.0"))
    with in_process(env) as d:
        d.events.wait("plugin.quarantined", "broken")
        assert d.parts.plugins.host("broken").wait_for(State.QUARANTINED, 10)
        view = d.view("broken")
        assert (view.state, view.version) == ("quarantined", "1.0.0")
        assert len(view.sha256) == 64 and view.signers == ("test",)
        assert view.quarantine is not None
        assert view.quarantine.reason == "restart_budget"
        assert "3 failures" in view.quarantine.message
        assert "'start' trapped" in view.quarantine.last_error
        assert d.invoke("ok") == b"ok@1.0.0:x"
        sha = view.sha256
    state = env.state()
    assert state["quarantined"] == ["broken"]
    assert state["quarantine_causes"]["broken"]["reason"] == "restart_budget"
    assert "broken" not in state["active"]  # it never came up

    with in_process(env) as d:
        view = d.view("broken")
        assert (view.state, view.version, view.sha256) == ("quarantined", "1.0.0", sha)
        assert view.quarantine is not None and "'start' trapped" in view.quarantine.last_error
        assert "plugin.failed" not in d.events.labels("broken")  # not started again
        d.sync()
        assert d.view("broken").state == "quarantined"
        drop(env.plugins, "broken.wasm", plugin("broken", "1.0.1"))  # a fixed version
        d.events.wait("plugin.installed", "broken", version="1.0.1")
        assert d.invoke("broken") == b"broken@1.0.1:x"
        assert d.view("broken").quarantine is None
        chain_ok(d)
    assert env.state()["quarantined"] == [] and env.state()["quarantine_causes"] == {}


def test_a_rejected_downgrade_is_refused_once_and_reported(env: Env) -> None:
    drop(env.plugins, "echo.wasm", echo("2.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "echo-1.wasm", echo("1.0.0"))
        (env.plugins / "echo.wasm").unlink()  # only the refused file remains: 2.0.0 serves
        d.events.wait("plugin.rejected", "echo", reason="downgrade")
        d.sync()  # two rescans: the refused bytes are not tried again
        d.sync()
        assert d.events.labels("echo").count("plugin.rejected") == 1
        assert d.invoke("echo") == b"echo@2.0.0:x"
        [cand] = d.view("echo").candidates
        assert (cand.version, cand.status.value) == ("1.0.0", "rejected")
        with pytest.raises(RollbackError):  # retry tries it, and the floor refuses it again
            d.daemon.backend.retry("echo", "ops")
        assert d.invoke("echo") == b"echo@2.0.0:x"
        chain_ok(d)
