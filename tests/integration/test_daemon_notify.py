"""The systemd notify protocol and signals, on a real daemon process."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from daemon_kit import SLOW_LIMITS, SPIN_FOREVER, Daemon, Env, drop, in_process, plugin

from forgeoned.adapters.sdnotify import Notifier


def test_ready_status_reload_watchdog_and_stopping(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    d = Daemon(env, {"WATCHDOG_USEC": "200000"})
    try:
        ready = d.ready()
        assert "STATUS=1 plugin running, 0 failed, 0 quarantined" in ready
        assert f"MAINPID={d.proc.pid}" in ready
        assert d.invoke("hello") == b"hello@1.0.0:x"  # READY means the plugin answers
        d.wait_for("WATCHDOG=1", timeout=10)
        d.messages.clear()
        d.proc.send_signal(signal.SIGHUP)
        reloading = d.wait_for("RELOADING=1", timeout=30)
        assert "MONOTONIC_USEC=" in reloading
        assert "STATUS=" in d.wait_for("READY=1", timeout=30)
        d.proc.send_signal(signal.SIGTERM)
        d.wait_for("STOPPING=1", timeout=30)
        assert d.proc.wait(30) == 0
        events = [e["event"] for e in env.audit_events()]
        assert events.count("daemon.reloaded") == 1
        assert events[-2:] == ["daemon.stopped", "audit.checkpoint"]
    finally:
        d.kill()


def test_bad_config_on_reload_keeps_running(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    d = Daemon(env)
    try:
        d.ready()
        env.write_config("shutdown_timeout_s = 'soon'")
        with d.client() as c, pytest.raises(Exception, match="shutdown_timeout_s"):
            c.reload()
        assert d.invoke("hello") == b"hello@1.0.0:x"
        events = [e["event"] for e in env.audit_events()]
        assert "daemon.reloaded" not in events  # a refused reload is its own event
        failed = [e for e in env.audit_events() if e["event"] == "daemon.reload_failed"]
        assert failed[-1]["reason"] == "config_invalid"
        assert "shutdown_timeout_s" in failed[-1]["message"]
    finally:
        d.stop()


def test_reload_answers_ready_even_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    try:
        with in_process(env) as d:
            assert notify.recv(4096).startswith(b"READY=1")
            d.events.fail_after = "daemon.reloaded"  # the last step of a reload raises
            with pytest.raises(RuntimeError, match="failing on purpose"):
                d.daemon.backend.reload("ops")
            assert notify.recv(4096).startswith(b"RELOADING=1")
            ready = notify.recv(4096).decode().splitlines()
            assert ready[0] == "READY=1"
            assert "reload failed: failing on purpose" in ready[1]
            d.events.fail_after = None
            assert d.invoke("hello") == b"hello@1.0.0:x"
    finally:
        notify.close()


def test_sigterm_drains_in_flight_calls_within_the_bound(tmp_path: Path) -> None:
    env = Env(tmp_path)
    busy = plugin("busy", "1.0.0", handle_extra=SPIN_FOREVER, limits=SLOW_LIMITS)
    drop(env.plugins, "busy.wasm", busy)
    d = Daemon(env)
    try:
        d.ready()
        outcome: list[object] = []

        def call() -> None:
            try:
                outcome.append(d.invoke("busy"))
            except Exception as exc:
                outcome.append(exc)

        t = threading.Thread(target=call)
        t.start()
        d.wait_until(lambda s: s["busy"]["state"] == "running", what="busy running")
        started = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(60) == 0
        elapsed = time.monotonic() - started
        t.join(30)
        assert outcome and isinstance(outcome[0], Exception)  # interrupted, not hung
        # drain_timeout_s = 2 bounds it (measured 2.2 s); a generous ceiling against a hang,
        # below the 12 s it took when the control server's close waited before the drain began
        assert elapsed < 10
    finally:
        d.kill()


def test_config_error_exits_78_with_one_line(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write_config("nonsense = 1")
    d = Daemon(env)
    code = d.proc.wait(60)
    err = d.stderr().strip()
    d.close()
    assert code == 78
    assert err.startswith("forgeoned: ") and "nonsense: unknown key" in err
    assert len(err.splitlines()) == 1


def test_notifier_abstract_namespace_and_no_socket() -> None:
    name = f"forgeoned-test-{os.getpid()}-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(5)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
        assert n.enabled and n.watchdog_interval() == 2.0
        assert n.ready("1 plugins running\nsecond line")
        msg = server.recv(4096).decode()
        assert msg.splitlines()[:2] == ["READY=1", "STATUS=1 plugins running second line"]
        n.close()
    finally:
        server.close()
    quiet = Notifier({})
    assert not quiet.enabled and not quiet.ready("x") and quiet.watchdog_interval() is None
    other = Notifier({"NOTIFY_SOCKET": "/nonexistent/sock", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval() is None
    assert not other.status("x") and other.failures == 1
    other.close()


def test_revoking_the_signing_key_on_reload_stops_its_plugin(tmp_path: Path) -> None:
    from daemon_kit import KEY

    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    d = Daemon(env)
    try:
        d.ready()
        assert d.invoke("hello") == b"hello@1.0.0:x"
        env.write_config(f'[trust]\nrevoked = ["{KEY.public_key.hex()}"]')
        with d.client() as c:
            c.reload()
        assert "hello" not in d.status()
        events = [e for e in env.audit_events() if e.get("plugin") == "hello"]
        # The running version is withdrawn, then its file is refused by the rescan (named by
        # the manifest it claims, which no trusted key vouches for any more).
        assert [e["event"] for e in events][-3:] == [
            "plugin.rejected", "plugin.removed", "plugin.rejected",
        ]  # fmt: skip
        assert events[-3]["reason"] == events[-1]["reason"] == "revoked_key"
        assert events[-1]["details"] == {"file": "hello.wasm", "manifest": "unverified"}
        assert "hello" not in env.state()["active"]
    finally:
        d.stop()
