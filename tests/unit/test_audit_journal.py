"""Journal fields, the non-blocking journal writer, the audit trail and the plugin log limiter."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from forgeoned.adapters.audit.console import NOTICE, ConsoleWriter, level_of
from forgeoned.adapters.audit.journald import (
    JournaldSink,
    JournalWriter,
    PluginLogSink,
    audit_fields,
)
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import PLUGIN_LOG_MESSAGE_ID, AuditEvent, EventName
from forgeoned.core.stats import DaemonStats, PluginStats


class FakeJournal:
    """Collects what would be sent; can fail or block like a dead or stuck journald."""

    def __init__(self, fail: bool = False, block: threading.Event | None = None) -> None:
        self.sent: list[dict[str, str]] = []
        self.fail = fail
        self.block = block

    def __call__(self, fields: dict[str, str]) -> None:
        if self.block is not None:
            self.block.wait(30)
        if self.fail:
            raise OSError(2, "No such file or directory")
        self.sent.append(fields)


EVENT = AuditEvent(
    EventName.PLUGIN_QUARANTINED,
    plugin="hello",
    version="1.2.0",
    sha256="ab" * 32,
    actor="supervisor",
    reason="restart_budget",
    message="crashed 5 times in 60 s",
    details={"restarts": 5},
)


def test_audit_fields_carry_the_contract_fields() -> None:
    entry = EVENT.fields() | {"seq": 42, "hash": "cd" * 32}
    fields = audit_fields(entry)
    assert fields == {
        "MESSAGE": "plugin.quarantined: hello 1.2.0: crashed 5 times in 60 s",
        "MESSAGE_ID": EventName.PLUGIN_QUARANTINED.message_id,
        "PRIORITY": "3",
        "SYSLOG_IDENTIFIER": "forgeoned",
        "FORGEONE_EVENT": "plugin.quarantined",
        "FORGEONE_PLUGIN": "hello",
        "FORGEONE_VERSION": "1.2.0",
        "FORGEONE_SHA256": "ab" * 32,
        "FORGEONE_ACTOR": "supervisor",
        "FORGEONE_REASON": "restart_budget",
        "FORGEONE_SEQ": "42",
        "FORGEONE_HASH": "cd" * 32,
        "FORGEONE_DETAILS": '{"restarts": 5}',
    }


def test_trail_records_to_log_then_journal_and_counts(tmp_path: Path) -> None:
    stats = DaemonStats()
    fake = FakeJournal()
    writer = JournalWriter(stats, send=fake)
    trail = AuditTrail(AuditLog(tmp_path, ManualClock()), JournaldSink(writer), stats)
    entry = trail.record_entry(EVENT)
    trail.close()
    assert writer.flush(10)
    assert [f["FORGEONE_EVENT"] for f in fake.sent] == [
        "audit.checkpoint",  # genesis
        "plugin.quarantined",
        "audit.checkpoint",  # on close
    ]
    assert fake.sent[1]["FORGEONE_SEQ"] == str(entry["seq"])
    assert stats.audit_events == {"plugin.quarantined": 1, "audit.checkpoint": 2}
    assert stats.journald_failures == 0
    writer.close()


def test_journald_not_running_still_audits_and_counts_failures(tmp_path: Path) -> None:
    stats = DaemonStats()
    writer = JournalWriter(stats, send=FakeJournal(fail=True))
    log = AuditLog(tmp_path, ManualClock())
    trail = AuditTrail(log, JournaldSink(writer), stats)
    for _ in range(3):
        trail.record(EVENT)
    assert writer.flush(10)
    assert stats.journald_failures == 4  # genesis checkpoint + 3 events
    assert [e["event"] for e in log.entries()].count("plugin.quarantined") == 3
    assert log.verify().ok
    writer.close()


def test_stuck_journald_never_blocks_the_caller(tmp_path: Path) -> None:
    stats = DaemonStats()
    release = threading.Event()
    writer = JournalWriter(stats, send=FakeJournal(block=release), capacity=4)
    log = AuditLog(tmp_path, ManualClock())
    trail = AuditTrail(log, JournaldSink(writer), stats)
    done = threading.Event()

    def flood() -> None:
        for _ in range(50):
            trail.record(EVENT)
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    # while journald is stuck the trail still returns: 50 records complete
    assert done.wait(60)
    assert stats.journald_failures >= 50 - 4 - 1
    assert log.head_seq == 51
    release.set()
    assert writer.flush(10)
    writer.close()


def test_plugin_log_flood_is_rate_limited_per_plugin_and_counted() -> None:
    clock = ManualClock()
    stats: defaultdict[str, PluginStats] = defaultdict(PluginStats)
    fake = FakeJournal()
    writer = JournalWriter(DaemonStats(), send=fake)
    sink = PluginLogSink(writer, stats.__getitem__, clock, rate_per_s=5, burst=10)
    accepted = sum(sink("noisy", 1, f"line {i}") for i in range(1000))
    assert accepted == 10
    assert stats["noisy"].log_dropped == 990
    assert sink("quiet", 4, "still heard")  # another plugin keeps its own budget
    clock.advance(1.0)
    assert sum(sink("noisy", 1, "again") for _ in range(10)) == 5
    assert stats["noisy"].log_dropped == 995
    assert writer.flush(10)
    lines = [(f["FORGEONE_PLUGIN"], f["MESSAGE"]) for f in fake.sent]
    assert lines.count(("noisy", "noisy: again")) == 5
    assert ("noisy", "noisy: 990 log lines dropped (rate limit)") in lines
    quiet = next(f for f in fake.sent if f["FORGEONE_PLUGIN"] == "quiet")
    assert quiet == {
        "MESSAGE": "quiet: still heard",  # `journalctl -u forgeoned` shows whose line it is
        "MESSAGE_ID": PLUGIN_LOG_MESSAGE_ID,
        "PRIORITY": "3",
        "SYSLOG_IDENTIFIER": "forgeoned",
        "FORGEONE_PLUGIN": "quiet",
        "FORGEONE_LOG_LEVEL": "4",
    }
    writer.close()


def test_plugin_log_levels_are_clamped_and_nul_bytes_escaped() -> None:
    fake = FakeJournal()
    writer = JournalWriter(DaemonStats(), send=fake)
    sink = PluginLogSink(writer, lambda _: PluginStats(), ManualClock(), max_message=8)
    sink("p", 99, "a\x00b")
    sink("p", -5, "0123456789")
    assert writer.flush(10)
    sent = [(f["PRIORITY"], f["MESSAGE"]) for f in fake.sent]
    assert sent == [("3", "p: a\\0b"), ("7", "p: 01234567")]
    writer.close()


def test_plugin_log_flood_with_a_stuck_journal_never_blocks_the_plugin() -> None:
    release = threading.Event()
    daemon = DaemonStats()
    writer = JournalWriter(daemon, send=FakeJournal(block=release), capacity=8)
    stats: defaultdict[str, PluginStats] = defaultdict(PluginStats)
    sink = PluginLogSink(writer, stats.__getitem__, ManualClock(), rate_per_s=1, burst=100)
    done = threading.Event()

    def flood() -> None:
        for i in range(10_000):
            sink("noisy", 1, f"line {i}")
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(60)  # the host call path returned 10,000 times while journald hung
    assert stats["noisy"].log_dropped == 10_000 - 100  # the rate limit
    # queue overflow while stuck (the sender may or may not have taken the first line yet)
    assert 100 - 8 - 1 <= daemon.journald_failures <= 100 - 8
    release.set()
    assert writer.flush(10)
    writer.close()


LEVELS = [(0, "DEBUG"), (1, "INFO"), (2, "NOTICE"), (3, "WARNING"), (4, "ERROR")]


def plugin_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "forgeoned.plugin"]


def test_journald_down_plugin_lines_go_to_stderr_by_level_name_still_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = DaemonStats()
    writer = JournalWriter(daemon, send=FakeJournal(fail=True))
    stats: defaultdict[str, PluginStats] = defaultdict(PluginStats)
    sink = PluginLogSink(writer, stats.__getitem__, ManualClock(), rate_per_s=5, burst=10)
    with caplog.at_level(logging.DEBUG, logger="forgeoned.plugin"):
        for level, _ in LEVELS:
            sink("hello", level, f"level {level}")
        accepted = sum(sink("hello", 1, f"flood {i}") for i in range(100))
        assert writer.flush(10)
    assert plugin_lines(caplog)[:5] == [(name, f"hello: level {n}") for n, name in LEVELS]
    assert accepted == 5 and stats["hello"].log_dropped == 95  # the budget, as with journald
    assert len(plugin_lines(caplog)) == 10
    assert daemon.journald_failures == 10
    writer.close()


def test_without_journald_plugin_lines_are_log_lines_by_level_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats: defaultdict[str, PluginStats] = defaultdict(PluginStats)
    sink = PluginLogSink(ConsoleWriter(), stats.__getitem__, ManualClock(), rate_per_s=1, burst=5)
    with caplog.at_level(logging.DEBUG, logger="forgeoned.plugin"):
        for level, _ in LEVELS:
            sink("hello", level, f"level {level}")
        assert not sink("hello", 4, "over the budget")
    assert plugin_lines(caplog) == [(name, f"hello: level {n}") for n, name in LEVELS]
    assert stats["hello"].log_dropped == 1


def test_journald_down_audit_echoes_go_to_stderr_at_the_events_priority(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(DaemonStats(), send=FakeJournal(fail=True))
    trail = AuditTrail(AuditLog(tmp_path, ManualClock()), JournaldSink(writer), DaemonStats())
    with caplog.at_level(logging.INFO, logger="forgeoned.audit"):
        trail.record(EVENT)
        assert writer.flush(10)
    echoes = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "forgeoned.audit"]
    assert ("ERROR", "plugin.quarantined: hello 1.2.0: crashed 5 times in 60 s") in echoes
    trail.close()
    writer.close()


def test_syslog_priorities_map_to_logging_levels() -> None:
    assert [level_of(p) for p in (7, 6, 5, 4, 3, 2, 0)] == [
        logging.DEBUG, logging.INFO, NOTICE, logging.WARNING, logging.ERROR,
        logging.CRITICAL, logging.CRITICAL,
    ]  # fmt: skip
    assert logging.getLevelName(NOTICE) == "NOTICE"
