"""Tick scheduling over a manual clock: due ticks run, paused plugins skip, no catch-up burst,
and a plugin whose tick is still running delays no other plugin's ticks."""

from __future__ import annotations

from collections.abc import Callable

from daemon_fakes import FakeVersion

from forgeoned.core.clock import ManualClock
from forgeoned.core.lifecycle import Trigger
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.ticks import TickScheduler, tick_interval


def run_now(name: str, job: Callable[[], None]) -> None:
    """A spawn that runs each tick inline (the unit tests' worker)."""
    job()


class HoldOne:
    """A spawn that runs every tick inline except plugin ``held``'s, which it keeps (as if
    still running on its worker, for as long as it likes) until :meth:`finish`."""

    def __init__(self, held: str) -> None:
        self.held = held
        self.kept: list[Callable[[], None]] = []

    def __call__(self, name: str, job: Callable[[], None]) -> None:
        if name == self.held:
            self.kept.append(job)
        else:
            job()

    def finish(self) -> None:
        kept, self.kept = self.kept, []
        for job in kept:
            job()


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
    ticks = TickScheduler(lambda: [host], clock, run_now)
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
    ticks = TickScheduler(lambda: [host], clock, run_now)
    ticks.run_due()
    clock.advance(1.0)  # ten intervals late
    ticks.run_due()
    ticks.run_due()
    assert v.ticks == 1 and ticks.ticks == 1  # one late tick, not ten
    clock.advance(0.1)
    ticks.run_due()
    assert v.ticks == 2


def test_a_slow_tick_delays_only_its_own_plugin() -> None:
    clock = ManualClock()
    fast_v = FakeVersion("1", "a", tick_interval_s=0.125)  # exact in binary: no drift
    slow_v = FakeVersion("1", "b", tick_interval_s=2.0)
    fast, slow = PluginHost("fast"), PluginHost("slow")
    for host, v in ((fast, fast_v), (slow, slow_v)):
        host.trigger(Trigger.START)
        host.install(v)
        host.trigger(Trigger.STARTED)
    spawn = HoldOne("slow")  # slow's tick never ends until told
    ticks = TickScheduler(lambda: [fast, slow], clock, spawn)
    ticks.run_due()
    for _ in range(80):  # 10 s of schedule
        clock.advance(0.125)
        ticks.run_due()
    assert fast_v.ticks == 80  # every one of its ticks, as if it were alone
    assert len(spawn.kept) == 1 and slow_v.ticks == 0  # its first tick still running
    assert ticks.skipped == 4  # slow's ticks due meanwhile: skipped, not queued
    spawn.finish()
    assert slow_v.ticks == 1
    clock.advance(2.0)
    ticks.run_due()
    assert len(spawn.kept) == 1  # its next tick starts at its next due time
