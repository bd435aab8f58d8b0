"""Versions leaving service (stop/unload audited, in the background) and bounded waits that
feed the watchdog, over fakes: no wall clock, counts only."""

from __future__ import annotations

import threading
from collections.abc import Callable

from daemon_fakes import FakeCommitter, FakeLoader, FakeVersion, RecordingAudit, cand

from forgeoned.adapters.wasm.version import Lifecycle
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import EventName
from forgeoned.core.heartbeat import wait_beating
from forgeoned.core.stats import DaemonStats
from forgeoned.core.swap_outcome import Outcome
from forgeoned.core.swap_ports import ShutdownFault
from forgeoned.core.swapper import Swapper
from forgeoned.errors import PluginStatusError, PluginTrap, TrapKind
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.retirer import Retirer

STOP_9 = ShutdownFault(LifecycleExport.STOP, PluginStatusError("stop", 9))
UNLOAD_DEADLINE = ShutdownFault(
    LifecycleExport.UNLOAD, PluginTrap("too slow", TrapKind.DEADLINE, "unload")
)


class Beats:
    """A heartbeat that counts its beats."""

    def __init__(self, interval_s: float | None = 0.5) -> None:
        self.interval_s = interval_s
        self.count = 0
        self.changed = threading.Condition()

    def beat(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()


def test_a_wait_is_cut_into_slices_with_a_beat_before_each() -> None:
    slices: list[float] = []

    def never(seconds: float) -> bool:
        slices.append(seconds)
        return False

    beats = Beats(0.5)
    assert wait_beating(never, 1.25, beats) is False
    assert slices == [0.0, 0.5, 0.5, 0.25]  # the slices add up to the timeout
    assert beats.count == 3


def test_a_wait_that_ends_early_stops_beating_and_no_watchdog_means_one_wait() -> None:
    answers = iter([False, False, True])
    beats = Beats(0.5)
    assert wait_beating(lambda s: next(answers), 100.0, beats) is True
    assert beats.count == 2
    waited: list[float] = []

    def record(answer: bool) -> Callable[[float], bool]:
        def wait(seconds: float) -> bool:
            waited.append(seconds)
            return answer

        return wait

    assert wait_beating(record(True), 3.0, Beats(None)) is True
    assert wait_beating(record(False), 3.0, None) is False
    assert waited == [3.0, 3.0]  # no watchdog: one plain wait


def test_a_lifecycle_call_runs_off_the_waiting_thread_while_it_beats() -> None:
    beats = Beats(0.01)
    ran_on: list[str] = []

    def slow_start() -> str:
        ran_on.append(threading.current_thread().name)
        with beats.changed:  # done only once the caller has beaten three times meanwhile
            assert beats.changed.wait_for(lambda: beats.count >= 3, 30)
        return "started"

    assert Lifecycle(heartbeat=beats).run(slow_start) == "started"
    assert ran_on == ["forgeoned-lifecycle"]
    assert Lifecycle().run(lambda: threading.current_thread().name) == "MainThread"


def test_a_failing_stop_and_unload_are_audited_and_the_upgrade_completes() -> None:
    loader, audit = FakeLoader(), RecordingAudit()
    swapper = Swapper(loader, FakeCommitter(), audit, DaemonStats(), ManualClock(), 1.0)
    host = PluginHost("hello")
    swapper.swap(host, cand("hello", "1.0.0"))
    v1 = host.current
    assert isinstance(v1, FakeVersion)
    v1.shutdown_faults = (STOP_9, UNLOAD_DEADLINE)
    audit.events.clear()
    assert swapper.swap(host, cand("hello", "2.0.0")).outcome is Outcome.UPGRADED
    assert audit.names() == [
        EventName.PLUGIN_UPGRADED,
        EventName.PLUGIN_FAILED,
        EventName.PLUGIN_FAILED,
    ]
    stop, unload = audit.events[1:]
    assert (stop.version, stop.reason, stop.details) == (
        "1.0.0",
        "stop_status",
        {"export": "stop", "status": 9},
    )
    assert (unload.reason, unload.details) == ("deadline", {"export": "unload"})
    assert host.call(b"x") == b"2.0.0:x" and v1.shut == 1


def test_the_retirer_runs_each_shutdown_on_its_own_thread_and_can_be_interrupted() -> None:
    audit = RecordingAudit()
    retirer = Retirer(audit)
    release = threading.Event()

    class Stuck(FakeVersion):
        def shutdown(self) -> list[ShutdownFault]:
            assert release.wait(30)  # a stop that runs until interrupted
            return [STOP_9]

    stuck, quick = Stuck("1.0.0", "a", block=release), FakeVersion("1.0.0", "b")
    retirer.retire("p", stuck)
    retirer.retire("p", stuck)  # already on its way out: not twice
    retirer.retire("q", quick)
    assert retirer.wait_retired(1, 30) and quick.shut == 1
    assert retirer.pending == 1 and not retirer.join(0)
    retirer.interrupt()  # the daemon's shutdown bound is over
    assert retirer.join(30) and retirer.pending == 0 and retirer.retired == 2
    assert [(e.plugin, e.reason) for e in audit.events] == [("p", "stop_status")]
