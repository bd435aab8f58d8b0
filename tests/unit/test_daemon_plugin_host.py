"""Routing of one plugin: the gate, pause/resume holding calls, faults, tick skipping."""

from __future__ import annotations

import threading

import pytest
from daemon_fakes import FakeVersion

from forgeoned.core.lifecycle import IllegalTransition, State, Trigger
from forgeoned.errors import PluginFault, PluginTrap
from forgeoned.plugin_host import PluginHost, RoutedVersion, UnavailableError


def running_host(**kw: object) -> tuple[PluginHost, FakeVersion]:
    host = PluginHost("hello", **kw)  # type: ignore[arg-type]
    v = FakeVersion("1.0.0", "sha1")
    host.trigger(Trigger.START)
    host.install(v)
    host.trigger(Trigger.STARTED)
    return host, v


def test_stopped_plugin_refuses_calls_at_once() -> None:
    host = PluginHost("hello", hold_timeout_s=30)
    with pytest.raises(UnavailableError, match="is stopped"):
        host.call(b"x")


def test_pause_holds_calls_until_resume() -> None:
    host, v = running_host(hold_timeout_s=10)
    host.pause(drain_timeout=1)
    assert host.state is State.PAUSED and v.paused == 1
    out: list[bytes] = []
    t = threading.Thread(target=lambda: out.append(host.call(b"held")))
    t.start()
    assert host.wait_held(1, 5)  # held, not refused
    assert out == []
    host.resume()
    t.join(5)
    assert out == [b"1.0.0:held"] and v.resumed == 1


def test_resume_of_a_running_plugin_is_an_illegal_transition() -> None:
    host, v = running_host()
    with pytest.raises(IllegalTransition):
        host.resume()
    assert v.resumed == 0 and host.state is State.RUNNING


def test_held_call_gives_up_after_the_hold_timeout() -> None:
    host, _ = running_host(hold_timeout_s=0.05)
    host.pause(drain_timeout=1)
    with pytest.raises(UnavailableError, match="stayed paused"):
        host.call(b"x")


def test_a_trap_fails_the_plugin_and_tells_the_supervisor() -> None:
    seen: list[tuple[str, PluginFault]] = []

    def on_fault(h: PluginHost, version: RoutedVersion, exc: PluginFault) -> None:
        seen.append((version.version, exc))

    host, v = running_host(on_fault=on_fault)
    v.trap = True
    with pytest.raises(PluginTrap):
        host.call(b"boom")
    assert host.state is State.FAILED and host.last_error == "unreachable"
    assert [s[0] for s in seen] == ["1.0.0"]
    with pytest.raises(UnavailableError, match="is failed"):
        host.call(b"again")
    assert host.view().state == "failed"


def test_tick_is_skipped_unless_running() -> None:
    host, v = running_host()
    assert host.tick() is True and v.ticks == 1
    host.pause(drain_timeout=1)
    assert host.tick() is False and v.ticks == 1


def test_view_reports_the_current_version() -> None:
    host, _ = running_host()
    view = host.view()
    assert (view.name, view.version, view.sha256, view.state) == (
        "hello",
        "1.0.0",
        "sha1",
        "running",
    )
    assert view.instances == 1
