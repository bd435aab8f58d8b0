"""Incremental verification on a real audit directory: the periodic check starts at the last
checkpoint it verified, catches what is edited after it, falls back to a full pass when an
earlier file changed, and (as documented) only a full pass sees an edit before it that keeps
the file's size and time."""

from __future__ import annotations

import json
import os
from pathlib import Path

from forgeoned.adapters.audit.files import log_files
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName


def _log(root: Path) -> AuditLog:
    return AuditLog(root, ManualClock(), rotate_bytes=8192, checkpoint_every=10)


def _fill(log: AuditLog, n: int, tag: str = "a") -> None:
    for i in range(n):
        log.record(AuditEvent(EventName.PLUGIN_PAUSED, plugin="hello", actor="uid=0(root)",
                              message=f"{tag}{i:04d}"))  # fmt: skip


def _edit(path: Path, old: bytes, new: bytes, *, keep_times: bool) -> None:
    st = path.stat()
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new, 1))
    if keep_times:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_incremental_check_starts_at_the_last_verified_checkpoint(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 150)
    full = log.verify()
    assert full.ok and log.verifier.full_runs == 1
    _fill(log, 25, "b")
    again = log.verify(incremental=True)
    assert again.ok and log.verifier.incremental_runs == 1
    assert again.entries == log.head_seq and again.checkpoints_checked > full.checkpoints_checked
    assert again == log.verify(incremental=False)  # the same verdict as a full pass
    log.close()


def test_an_edit_after_the_checkpoint_is_caught_incrementally(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 100)
    assert log.verify().ok
    _fill(log, 5, "b")
    _edit(log_files(tmp_path)[-1], b'"b0003"', b'"X0003"', keep_times=True)
    result = log.verify(incremental=True)
    assert not result.ok and "edited" in result.why
    log.close()


def test_a_changed_earlier_file_makes_the_check_a_full_one(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 150)
    assert len(log_files(tmp_path)) >= 3 and log.verify().ok
    _edit(log_files(tmp_path)[0], b'"a0002"', b'"X0002"', keep_times=False)
    result = log.verify(incremental=True)
    assert not result.ok and "edited" in result.why
    assert log.verifier.incremental_runs == 0  # the file's time changed: a full pass ran
    log.close()


def test_only_a_full_pass_sees_an_edit_before_the_checkpoint_that_keeps_size_and_time(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path)
    _fill(log, 150)
    assert log.verify().ok
    first = log_files(tmp_path)[0]
    seq2 = json.loads(first.read_bytes().splitlines()[2])["message"].encode()
    _edit(first, b'"' + seq2 + b'"', b'"' + seq2.upper() + b'"', keep_times=True)
    assert log.verify(incremental=True).ok  # the documented limit of the periodic check
    assert not log.verify().ok  # the full pass: at start, every Nth check, audit verify
    log.close()
