"""The daemon's own log records keep their syslog priority in the journal (issue 17, item 2):
the target is chosen from $JOURNAL_STREAM, and without systemd-python each stderr line carries
the ``<N>`` prefix journald parses."""

from __future__ import annotations

import io
import logging
import os

import pytest

from forgeoned.adapters import journal_log
from forgeoned.adapters.journal_log import PrefixFormatter, Target, priority


def test_levels_map_to_syslog_priorities() -> None:
    assert [priority(level) for level in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    assert priority(25) == 5 and priority(26) == 4 and priority(60) == 1  # NOTICE: a notice


def test_every_line_of_a_record_carries_its_prefix() -> None:
    record = logging.LogRecord("forgeoned.audit", logging.CRITICAL, __file__, 1, "a\nb", (), None)
    assert PrefixFormatter().format(record) == "<2>forgeoned.audit: a\n<2>b"


def test_stderr_is_the_journal_only_when_journal_stream_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "w", closefd=False) as stream:
            st = os.fstat(write_end)
            monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
            assert journal_log.stderr_is_journal(stream)
            monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
            assert not journal_log.stderr_is_journal(stream)
            monkeypatch.setenv("JOURNAL_STREAM", "garbage")
            assert not journal_log.stderr_is_journal(stream)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_prefix_target_writes_priorities_on_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    kept, level = list(root.handlers), root.level
    try:
        assert journal_log.configure("info", Target.PREFIX) is Target.PREFIX
        logging.getLogger("forgeoned.audit").critical("AUDIT CHAIN BROKEN at seq 3")
        logging.getLogger("forgeoned").warning("changed, applied only on restart: x")
        logging.getLogger("forgeoned").debug("dropped below the level")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in kept:
            root.addHandler(handler)
        root.setLevel(level)
    assert stream.getvalue().splitlines() == [
        "<2>forgeoned.audit: AUDIT CHAIN BROKEN at seq 3",
        "<4>forgeoned: changed, applied only on restart: x",
    ]


def test_the_target_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("FORGEONED_LOG_TARGET", raising=False)
    assert journal_log.choose_target() is Target.PLAIN
    monkeypatch.setenv("FORGEONED_LOG_TARGET", "prefix")
    assert journal_log.choose_target() is Target.PREFIX
