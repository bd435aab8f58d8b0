"""Without journald (a daemon run in a terminal) audit entries are echoed as log lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail, ConsoleSink
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats


def test_console_sink_echoes_each_durable_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(tmp_path, ManualClock())
    trail = AuditTrail(log, ConsoleSink(), DaemonStats())
    with caplog.at_level(logging.INFO, logger="forgeoned.audit"):
        trail.record(
            AuditEvent(
                EventName.PLUGIN_REJECTED,
                plugin="evil",
                version="6.6.6",
                reason="unsigned",
                message="module is not signed",
            )
        )
    trail.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "forgeoned.audit"]
    stored = [e for e in AuditLog(tmp_path, ManualClock()).entries()]
    seq = next(e["seq"] for e in stored if e["event"] == "plugin.rejected")
    assert lines == [
        f"#{seq} plugin.rejected plugin=evil version=6.6.6 reason=unsigned - module is not signed"
    ]


def test_console_echoes_carry_the_events_journal_priority(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without journald a refused reload is still an error line, a start an info line."""
    log = AuditLog(tmp_path, ManualClock())
    trail = AuditTrail(log, ConsoleSink(), DaemonStats())
    with caplog.at_level(logging.DEBUG, logger="forgeoned.audit"):
        for name in (EventName.DAEMON_RELOAD_FAILED, EventName.PLUGIN_REJECTED,
                     EventName.PLUGIN_INSTALLED, EventName.PLUGIN_STARTED):  # fmt: skip
            trail.record(AuditEvent(name, plugin="p", reason="x"))
    trail.close()
    levels = {
        r.getMessage().split()[1]: r.levelname
        for r in caplog.records
        if r.name == "forgeoned.audit"
    }
    assert levels == {
        "daemon.reload_failed": "ERROR",
        "plugin.rejected": "WARNING",
        "plugin.installed": "NOTICE",
        "plugin.started": "INFO",
    }
