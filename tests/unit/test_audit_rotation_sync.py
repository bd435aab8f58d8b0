"""Group commit across rotations: the sync descriptor of a rotated-away file is retired, not
closed under a syncing thread, and every descriptor is released on close."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.errors import AuditError

EVENT = AuditEvent(EventName.PLUGIN_INSTALLED, plugin="hello", version="1.0.0", actor="uid:0")


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_records_from_many_threads_across_many_rotations(tmp_path: Path) -> None:
    before = _open_fds()
    log = AuditLog(tmp_path, ManualClock(), rotate_bytes=2048, checkpoint_every=50)
    start = threading.Barrier(8)
    seqs: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        start.wait()
        for _ in range(60):
            seq = log.record(EVENT)["seq"]
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = sorted(tmp_path.glob("audit-*.jsonl"))
    assert len(files) > 20  # it really rotated, many times, under concurrent syncs
    assert len(set(seqs)) == 480
    result = log.verify()
    assert result.ok, result
    assert result.entries == log.head_seq
    log.close()
    assert _open_fds() == before  # the current, the sync and every retired descriptor


def test_a_failed_rotation_keeps_the_current_file(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock(), rotate_bytes=2048)
    while len(list(tmp_path.glob("audit-*.jsonl"))) == 1:
        last = log.record(EVENT)
    blocker = tmp_path / "audit-000003.jsonl"
    blocker.symlink_to(tmp_path / "elsewhere")  # O_NOFOLLOW: the next file cannot be opened
    with pytest.raises(AuditError, match="cannot open"):
        for _ in range(100):
            last = log.record(EVENT)
    blocker.unlink()
    after = log.record(EVENT)
    assert after["seq"] == last["seq"] + 1  # the refused entry took no seq
    assert log.verify().ok
    log.close()
