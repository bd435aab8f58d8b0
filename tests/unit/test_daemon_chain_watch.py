"""The daemon's audit chain watch over a fake log: verdicts, loud once per breakage, survives
a verification that cannot run, and stops promptly."""

from __future__ import annotations

import logging
import threading

import pytest

from forgeoned.core.audit_chain import VerifyResult
from forgeoned.errors import AuditError
from forgeoned.service.chain_watch import ChainWatch, describe

OK = VerifyResult(ok=True, entries=10)
BROKEN = VerifyResult(ok=False, entries=3, first_bad_seq=3, why="content does not match")


class FakeLog:
    def __init__(self, *results: VerifyResult | Exception) -> None:
        self.results = list(results)
        self.calls = 0
        self.incremental: list[bool] = []
        self.lock = threading.Lock()

    def verify(self, trusted_key: str | None = None, *, incremental: bool = False) -> VerifyResult:
        with self.lock:
            self.calls += 1
            self.incremental.append(incremental)
            result = self.results[min(self.calls, len(self.results)) - 1]
        if isinstance(result, Exception):
            raise result
        return result


def test_one_check_at_start_only_when_the_interval_is_zero() -> None:
    log = FakeLog(OK)
    watch = ChainWatch(log, 0)
    watch.start()
    assert watch.wait_runs(1, 10)
    assert watch.last == OK
    watch.close()
    assert log.calls == 1


def test_a_breakage_is_logged_once_and_its_repair_once(caplog: pytest.LogCaptureFixture) -> None:
    watch = ChainWatch(FakeLog(OK, BROKEN, BROKEN, BROKEN, OK), 0)
    with caplog.at_level(logging.WARNING, logger="forgeoned.audit"):
        for _ in range(5):
            watch.check()
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [r.getMessage().split(";")[0] for r in critical] == [describe(BROKEN)]
    assert "AUDIT CHAIN BROKEN at seq 3: content does not match" in describe(BROKEN)
    assert any("intact (10 entries) again" in r.getMessage() for r in caplog.records)
    assert watch.last == OK and watch.runs == 5


def test_a_check_that_cannot_run_keeps_the_last_verdict_and_the_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = FakeLog(BROKEN, AuditError("cannot read audit-000001.jsonl"), OK)
    watch = ChainWatch(log, 0.01)
    watch.start()
    assert watch.wait_runs(3, 10)
    watch.close()
    assert log.calls >= 3
    assert "could not run: cannot read audit-000001.jsonl" in caplog.text
    assert watch.last is not None and watch.last.ok


def test_close_ends_a_long_wait_at_once() -> None:
    watch = ChainWatch(FakeLog(OK), 3600)
    watch.start()
    assert watch.wait_runs(1, 10)
    watch.close()  # does not wait for the hour
    assert not watch._thread.is_alive()


def test_checks_are_incremental_but_the_first_and_every_nth_are_full() -> None:
    log = FakeLog(OK)
    watch = ChainWatch(log, 0, full_every=3)
    for _ in range(7):
        watch.check()
    assert log.incremental == [False, True, True, False, True, True, False]
