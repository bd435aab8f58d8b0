"""The audit budget of denied host calls: every denial counted, few audited, none unreported."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_abi_hostcalls import FakeMemory, Rig, rig

from forgeoned.core.abi import DENIED
from forgeoned.core.clock import ManualClock
from forgeoned.core.denial_throttle import DenialSummary, DenialThrottle
from forgeoned.core.events import EventName
from forgeoned.core.manifest import Capabilities

NONE = Capabilities()


def details(r: Rig) -> list[dict[str, object]]:
    return [e.details for e in r.audit.events]


def clock_of(r: Rig) -> ManualClock:
    clock = r.calls.services.clock
    assert isinstance(clock, ManualClock)
    return clock


def test_first_ten_per_window_are_audited_then_only_counted() -> None:
    throttle = DenialThrottle(limit=10, window_s=60.0)
    verdicts = [throttle.deny("log", now=float(i) / 100) for i in range(1000)]
    assert [audit for audit, _ in verdicts] == [True] * 10 + [False] * 990
    assert all(due == [] for _, due in verdicts)


def test_summary_is_due_when_the_window_has_ended() -> None:
    throttle = DenialThrottle(limit=2, window_s=60.0)
    for _ in range(5):
        throttle.deny("log", now=0.0)
    assert throttle.due(59.9) == []
    assert throttle.due(60.0) == [DenialSummary("log", 3, 60.0)]
    assert throttle.due(61.0) == []  # reported once
    # The next denial opens a fresh window with a fresh allowance.
    assert throttle.deny("log", now=61.0) == (True, [])


def test_next_denial_after_the_window_carries_the_summary_first() -> None:
    throttle = DenialThrottle(limit=1, window_s=10.0)
    throttle.deny("kv_set", now=0.0)
    throttle.deny("kv_set", now=1.0)
    throttle.deny("kv_set", now=2.0)
    audit, due = throttle.deny("env_get", now=10.5)  # any function's denial flushes
    assert (audit, due) == (True, [DenialSummary("kv_set", 2, 10.0)])


def test_functions_have_separate_budgets() -> None:
    throttle = DenialThrottle(limit=1, window_s=60.0)
    assert throttle.deny("log", 0.0)[0] and throttle.deny("kv_get", 0.0)[0]
    assert not throttle.deny("log", 1.0)[0] and not throttle.deny("kv_get", 1.0)[0]


def test_drain_reports_everything_without_a_new_allowance() -> None:
    throttle = DenialThrottle(limit=1, window_s=60.0)
    for now in (0.0, 1.0, 2.0):
        throttle.deny("log", now)
    assert throttle.drain() == [DenialSummary("log", 2, 60.0)]
    assert throttle.drain() == []
    assert throttle.deny("log", 3.0) == (False, [])  # same window: still spent
    assert throttle.due(60.0) == [DenialSummary("log", 1, 60.0)]


@pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (10, 0.0), (10, -1.0)])
def test_bad_settings_are_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="need limit >= 1 and window_s > 0"):
        DenialThrottle(limit, window)


def test_hostile_loop_is_counted_in_full_but_audited_ten_times(tmp_path: Path) -> None:
    r = rig(tmp_path, caps=NONE)
    m: FakeMemory = r.mem
    assert all(r.calls.random_fill(0, 8) == DENIED for _ in range(5000))
    assert r.stats.hostcalls[("random_fill", "denied")] == 5000
    assert len(r.audit.events) == 10
    assert {e.event for e in r.audit.events} == {EventName.HOSTCALL_DENIED}
    assert m.data[:8] == bytes(8)  # nothing was written for a denied call
    # Another function has its own budget.
    for _ in range(20):
        assert r.calls.kv_get(0, 1, 100, 10) == DENIED
    assert [d["function"] for d in details(r)].count("kv_get") == 10


def test_summary_event_when_the_window_closes(tmp_path: Path) -> None:
    r = rig(tmp_path, caps=NONE)
    clock = clock_of(r)
    for _ in range(25):
        r.calls.log(1, 0, 1)
    clock.advance(30.0)
    r.calls.report_suppressed()  # a lifecycle/tick call in the window: nothing due yet
    assert len(r.audit.events) == 10
    clock.advance(30.0)
    r.calls.report_suppressed()
    summary = r.audit.events[-1]
    assert summary.details == {"function": "log", "suppressed": 15, "window_s": 60.0}
    assert summary.plugin == "p" and summary.reason == "capability"
    assert "denied log 15 more times within 60 s" in summary.message
    assert r.stats.hostcalls[("log", "denied")] == 25


def test_summary_at_the_next_denial_then_a_new_window(tmp_path: Path) -> None:
    r = rig(tmp_path, caps=NONE)
    for _ in range(12):
        r.calls.time_now_ms()
    clock_of(r).advance(61.0)
    assert r.calls.time_now_ms() == DENIED
    tail = details(r)[10:]
    assert tail == [
        {"function": "time_now_ms", "suppressed": 2, "window_s": 60.0},
        {"function": "time_now_ms", "target": ""},  # the new window's first denial
    ]


def test_final_report_when_the_instance_goes_away(tmp_path: Path) -> None:
    r = rig(tmp_path, caps=NONE)
    for _ in range(13):
        r.calls.env_get(0, 0, 0, 0)  # empty key: not granted, so denied
    r.calls.report_suppressed(final=True)
    assert details(r)[-1] == {"function": "env_get", "suppressed": 3, "window_s": 60.0}
    assert len(r.audit.events) == 11
