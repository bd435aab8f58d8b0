"""The audit trail when the disk refuses writes: refused and lost records are counted, the
first write that works is preceded by one ``audit.gap`` entry covering the period, and a
probe closes the gap on its own when nobody records anything."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.outage import Outage
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import AuditError, AuditUnavailableError


class FakeLog:
    """A DurableLog whose disk can be full; stores the events it accepts."""

    def __init__(self) -> None:
        self.clock = ManualClock()  # wall time starts at 1_700_000_000
        self.full = False
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def record(self, event: AuditEvent) -> dict[str, Any]:
        with self.lock:
            if self.full:
                raise AuditUnavailableError("cannot write the audit log: No space left on device")
            entry = {**event.fields(), "seq": len(self.entries) + 1}
            self.entries.append(entry)
            return entry

    def take_internal(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass

    def labels(self) -> list[str]:
        return [str(e["event"]) for e in self.entries]


def paused(plugin: str = "hello") -> AuditEvent:
    return AuditEvent(EventName.PLUGIN_PAUSED, plugin=plugin, actor="ops")


def failed(plugin: str = "hello") -> AuditEvent:
    return AuditEvent(EventName.PLUGIN_FAILED, plugin=plugin, reason="unreachable")


Maker = Callable[..., tuple[FakeLog, AuditTrail, list[bool]]]


@pytest.fixture
def make() -> Iterator[Maker]:
    trails: list[AuditTrail] = []

    def build(retry_s: float = 3600.0) -> tuple[FakeLog, AuditTrail, list[bool]]:
        log = FakeLog()
        trail = AuditTrail(log, None, DaemonStats(), retry_s=retry_s)
        changes: list[bool] = []
        trail.on_change = lambda: changes.append(trail.outage.ok)
        trails.append(trail)
        return log, trail, changes

    yield build
    for trail in trails:
        trail.close()  # stops the probe threads


def test_a_gap_entry_precedes_the_first_record_after_the_disk_had_room_again(make: Maker) -> None:
    log, trail, changes = make()
    trail.record(paused())
    log.full = True
    log.clock.advance(10)
    with pytest.raises(AuditUnavailableError), trail.outage.precondition():
        trail.record(paused())  # an action's precondition: refused
    log.clock.advance(5)
    for _ in range(2):
        with pytest.raises(AuditUnavailableError):
            trail.record(failed())  # a fault happened anyway: lost
    assert not trail.outage.ok and changes == [False]  # told once, when it started
    log.full = False
    log.clock.advance(5)
    trail.record(paused("other"))
    assert log.labels() == ["plugin.paused", "audit.gap", "plugin.paused"]
    gap = log.entries[1]
    assert gap["actor"] == "forgeoned" and gap["reason"] == "write_failed"
    assert gap["details"] == {
        "kind": "write_failed",
        "since": "2023-11-14T22:13:30.000000Z",
        "until": "2023-11-14T22:13:40.000000Z",
        "failed_writes": 3,
        "lost": {"plugin.failed": 2},
        "refused": {"plugin.paused": 1},
        "error": "cannot write the audit log: No space left on device",
    }
    assert "2 records lost, 1 actions refused" in gap["message"]
    assert trail.outage.ok and changes == [False, True]
    assert (trail.outage.lost_total, trail.outage.refused_total) == (2, 1)
    trail.record(paused())
    assert log.labels().count("audit.gap") == 1  # one per outage


def test_the_precondition_mark_covers_only_the_first_record_inside(make: Maker) -> None:
    log, trail, _ = make()
    with trail.outage.precondition():
        trail.record(paused())  # the precondition: written
        log.full = True
        with pytest.raises(AuditUnavailableError):
            trail.record(failed())  # after the action: lost, not refused
    log.full = False
    trail.record(paused())
    gap = next(e for e in log.entries if e["event"] == "audit.gap")
    assert gap["details"]["lost"] == {"plugin.failed": 1}
    assert gap["details"]["refused"] == {}


def test_a_gap_that_cannot_be_written_keeps_its_period_open(make: Maker) -> None:
    log, trail, _ = make()
    log.full = True
    with pytest.raises(AuditUnavailableError):
        trail.record(failed())
    assert not trail.heal()  # still full: the probe's attempt fails too
    with pytest.raises(AuditUnavailableError):
        trail.record(failed("other"))
    log.full = False
    assert trail.heal()
    [gap] = [e for e in log.entries if e["event"] == "audit.gap"]
    assert gap["details"]["lost"] == {"plugin.failed": 2}
    assert gap["details"]["failed_writes"] == 3  # two records and one retry of the gap
    assert trail.heal()  # nothing to do any more


def test_the_probe_writes_the_gap_without_any_other_record(make: Maker) -> None:
    log, trail, changes = make(retry_s=0.01)
    recovered = threading.Event()

    def on_change() -> None:
        changes.append(trail.outage.ok)
        if trail.outage.ok:
            recovered.set()

    trail.on_change = on_change
    log.full = True
    with pytest.raises(AuditUnavailableError):
        trail.record(failed())
    log.full = False
    assert recovered.wait(10), "the probe did not close the gap"
    assert log.labels() == ["audit.gap"]
    assert changes == [False, True]


def test_errors_that_are_not_about_the_disk_are_not_an_outage() -> None:
    class Broken(FakeLog):
        def record(self, event: AuditEvent) -> dict[str, Any]:
            raise AuditError("audit event is not representable as JSON")

    trail = AuditTrail(Broken(), None, DaemonStats())
    with pytest.raises(AuditError):
        trail.record(paused())
    assert trail.outage.ok


def test_outage_view_for_metrics_and_status() -> None:
    outage = Outage()
    assert outage.view().ok and outage.view().since is None
    assert outage.failed("plugin.paused", "disk full", 100.0, refused=True)
    assert not outage.failed("control.action", "disk full", 101.0)  # already open
    view = outage.view()
    assert (view.ok, view.since, view.error) == (False, 100.0, "disk full")
    assert (view.lost_total, view.refused_total) == (1, 1)


def test_guard_refuses_an_action_whose_precondition_cannot_be_written(make: Maker) -> None:
    log, trail, _ = make()
    log.full = True
    done: list[str] = []

    def pause() -> None:
        trail.record(paused())  # the precondition
        done.append("paused")

    with pytest.raises(AuditUnavailableError):
        trail.outage.guard(pause, "pause hello")
    assert done == []
    assert trail.outage.refused_total == 1 and trail.outage.lost_total == 0


def test_guard_lets_an_action_stand_when_a_later_record_is_lost(
    make: Maker, caplog: pytest.LogCaptureFixture
) -> None:
    log, trail, _ = make()
    done: list[str] = []

    def reset() -> None:
        trail.record(AuditEvent(EventName.PLUGIN_RESET, plugin="hello", actor="ops"))
        done.append("reset")
        log.full = True  # the disk fills during the action
        trail.record(AuditEvent(EventName.PLUGIN_INSTALLED, plugin="hello"))

    trail.outage.guard(reset, "reset hello")
    assert done == ["reset"]
    assert trail.outage.refused_total == 0 and trail.outage.lost_total == 1
    assert "reset hello: done, but a record made after it was lost" in caplog.text


def test_verify_names_the_gaps_of_an_intact_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    trail = AuditTrail(log, None, DaemonStats())
    trail.record(paused())
    outage = trail.outage
    outage.failed("plugin.paused", "cannot write the audit log: No space left on device", 1.0)
    trail.record(paused())  # preceded by the gap
    result = log.verify()
    gap_seq = next(e["seq"] for e in log.entries() if e["event"] == "audit.gap")
    assert result.ok and result.gaps == (gap_seq,)
    assert result.to_dict()["gaps"] == (gap_seq,)
    trail.close()
