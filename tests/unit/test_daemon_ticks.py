"""Tick scheduling over a manual clock: due ticks run, paused plugins skip, no catch-up burst."""

from __future__ import annotations

from daemon_fakes import FakeVersion

from forgeoned.core.clock import ManualClock
from forgeoned.core.lifecycle import Trigger
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.ticks import TickScheduler, tick_interval


def ticking(version: str, sha: str) -> FakeVersion:
    return FakeVersion(version, sha, tick_interval_s=0.1)


def host_with(version: FakeVersion) -> PluginHost:
    host = PluginHost("t")
    host.trigger(Trigger.START)
    host.install(version)
    host.trigger(Trigger.STARTED)
    return host


def test_interval_comes_from_the_current_version() -> None:
    assert tick_interval(host_with(ticking("1", "a"))) == 0.1
    assert tick_interval(host_with(FakeVersion("1", "a"))) == 0.0
    assert tick_interval(PluginHost("empty")) == 0.0


def test_ticks_run_when_due_and_are_skipped_while_paused() -> None:
    clock = ManualClock()
    v = ticking("1", "a")
    host = host_with(v)
    ticks = TickScheduler(lambda: [host], clock)
    assert ticks.run_due() == 0.1  # first tick one interval after start
    assert v.ticks == 0
    clock.advance(0.1)
    ticks.run_due()
    assert v.ticks == 1
    host.pause(drain_timeout=1)
    clock.advance(0.1)
    ticks.run_due()
    assert v.ticks == 1  # skipped, not queued
    host.resume()
    clock.advance(0.1)
    ticks.run_due()
    assert v.ticks == 2


def test_a_late_scheduler_does_not_burst() -> None:
    clock = ManualClock()
    v = ticking("1", "a")
    host = host_with(v)
    ticks = TickScheduler(lambda: [host], clock)
    ticks.run_due()
    clock.advance(1.0)  # ten intervals late
    ticks.run_due()
    ticks.run_due()
    assert v.ticks == 1 and ticks.ticks == 1  # one late tick, not ten
    clock.advance(0.1)
    ticks.run_due()
    assert v.ticks == 2
