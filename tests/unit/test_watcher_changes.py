"""The watcher's timing policy on a manual clock: debounce, settle, being written, and a
writer that reopens the file for every chunk (held, then judged; bounded)."""

from __future__ import annotations

import pytest

from forgeoned.adapters.files.changes import (
    RENAME_DELAY_S,
    REOPEN_S,
    SETTLE_S,
    WRITE_GRACE_S,
    Change,
    ChangeSchedule,
)
from forgeoned.core.clock import ManualClock

DEBOUNCE = 0.05


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sched(clock: ManualClock) -> ChangeSchedule:
    return ChangeSchedule(clock, debounce_s=DEBOUNCE)


def test_a_rename_is_reported_almost_at_once(clock: ManualClock, sched: ChangeSchedule) -> None:
    sched.note("a.wasm", Change.RENAMED)
    assert sched.take_ready() == set()
    assert sched.next_due() == pytest.approx(RENAME_DELAY_S)
    clock.advance(RENAME_DELAY_S)
    assert sched.take_ready() == {"a.wasm"}
    assert sched.next_due() is None
    assert not sched.is_writing("a.wasm")


def test_changes_within_the_debounce_make_one_batch(
    clock: ManualClock, sched: ChangeSchedule
) -> None:
    sched.note("a.wasm", Change.OTHER)
    clock.advance(DEBOUNCE / 2)
    sched.note("b.wasm", Change.OTHER)
    sched.note("a.wasm", Change.OTHER)  # postpones a.wasm to b.wasm's time
    clock.advance(DEBOUNCE / 2)
    assert sched.take_ready() == set()
    clock.advance(DEBOUNCE / 2)
    assert sched.take_ready() == {"a.wasm", "b.wasm"}


def test_a_file_still_open_is_reported_once_quiet_for_the_settle_time(
    clock: ManualClock, sched: ChangeSchedule
) -> None:
    sched.note("a.wasm", Change.WRITTEN)
    clock.advance(SETTLE_S - 0.1)
    sched.note("a.wasm", Change.WRITTEN)  # still writing: the report moves on
    clock.advance(0.2)
    assert sched.take_ready() == set()
    assert sched.is_writing("a.wasm")
    clock.advance(SETTLE_S)
    assert sched.take_ready() == {"a.wasm"}
    assert sched.is_writing("a.wasm")  # reported, but never closed
    clock.advance(WRITE_GRACE_S)
    assert not sched.is_writing("a.wasm")  # quiet for the grace: judged as it is


def test_a_close_after_writing_reports_at_once_and_rechecks_after_the_reopen_window(
    clock: ManualClock, sched: ChangeSchedule
) -> None:
    sched.note("a.wasm", Change.WRITTEN)
    sched.note("a.wasm", Change.CLOSED)
    clock.advance(DEBOUNCE)
    assert sched.take_ready() == {"a.wasm"}
    assert sched.is_writing("a.wasm")  # a writer may reopen it: a failing read is held
    clock.advance(REOPEN_S - DEBOUNCE)
    assert sched.take_ready() == {"a.wasm"}  # nobody reopened it: judge it now
    assert not sched.is_writing("a.wasm")
    assert sched.next_due() is None


def test_a_close_without_a_write_is_an_ordinary_change(
    clock: ManualClock, sched: ChangeSchedule
) -> None:
    sched.note("a.wasm", Change.CLOSED)
    assert not sched.is_writing("a.wasm")
    clock.advance(DEBOUNCE)
    assert sched.take_ready() == {"a.wasm"}
    assert sched.next_due() is None


def test_a_writer_reopening_for_every_chunk_is_writing_until_it_stops(
    clock: ManualClock, sched: ChangeSchedule
) -> None:
    reports: list[tuple[float, bool]] = []
    for _ in range(5):  # five chunks, each written by a fresh open/close, 0.3 s apart
        sched.note("a.wasm", Change.WRITTEN)
        sched.note("a.wasm", Change.CLOSED)
        clock.advance(0.3)
        if sched.take_ready():
            reports.append((clock.monotonic(), sched.is_writing("a.wasm")))
    assert len(reports) == 5 and all(writing for _, writing in reports)
    clock.advance(REOPEN_S - 0.3)
    assert sched.take_ready() == {"a.wasm"}
    assert not sched.is_writing("a.wasm")


def test_a_writer_that_never_stops_is_judged_after_the_grace(
    clock: ManualClock, sched: ChangeSchedule
) -> None:
    elapsed = 0.0
    while elapsed < WRITE_GRACE_S:
        sched.note("a.wasm", Change.WRITTEN)
        sched.note("a.wasm", Change.CLOSED)
        assert sched.is_writing("a.wasm")
        clock.advance(REOPEN_S / 2)
        elapsed += REOPEN_S / 2
    sched.note("a.wasm", Change.WRITTEN)
    sched.note("a.wasm", Change.CLOSED)
    assert not sched.is_writing("a.wasm")  # the run lasted the whole grace: judged


def test_a_reopen_after_the_window_starts_a_new_run(
    clock: ManualClock, sched: ChangeSchedule
) -> None:
    sched.note("a.wasm", Change.WRITTEN)
    sched.note("a.wasm", Change.CLOSED)
    clock.advance(WRITE_GRACE_S - 1)
    sched.note("a.wasm", Change.WRITTEN)  # much later: a new writer, a new run
    sched.note("a.wasm", Change.CLOSED)
    clock.advance(2)
    assert not sched.is_writing("a.wasm")  # its own reopen window is over
    sched.note("a.wasm", Change.WRITTEN)
    sched.note("a.wasm", Change.CLOSED)
    assert sched.is_writing("a.wasm")


@pytest.mark.parametrize("change", [Change.RENAMED, Change.OTHER])
def test_a_rename_or_delete_ends_the_writing(
    clock: ManualClock, sched: ChangeSchedule, change: Change
) -> None:
    sched.note("a.wasm", Change.WRITTEN)
    sched.note("a.wasm", Change.CLOSED)
    sched.note("a.wasm", Change.WRITTEN)
    sched.note("a.wasm", change)
    assert not sched.is_writing("a.wasm")
    clock.advance(DEBOUNCE)
    assert sched.take_ready() == {"a.wasm"}
    assert sched.next_due() is None  # no recheck left behind
