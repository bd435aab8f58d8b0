"""Following the audit log: from any seq, across rotation, live, and where it must stop."""

from __future__ import annotations

import itertools
import shutil
import threading
from pathlib import Path
from typing import Any

from forgeoned.adapters.audit.follow import FollowEnd, follow
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName

BOUND = 30.0


def _log(directory: Path) -> AuditLog:
    return AuditLog(directory, ManualClock(), rotate_bytes=1200, checkpoint_every=1000)


def _add(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record(AuditEvent(EventName.PLUGIN_PAUSED, plugin="p", version=f"1.{i}.0"))


def _take(items: Any, n: int) -> list[Any]:
    out = []
    for item in items:
        if item is not None:
            out.append(item)
        if len(out) == n:
            break
    return out


def test_from_any_seq_across_rotated_files(tmp_path: Path) -> None:
    with _log(tmp_path) as log:
        _add(log, 20)
        assert len(list(tmp_path.glob("audit-*.jsonl"))) > 3
        head = log.durable_seq
        got = _take(follow(log, 7, heartbeat_s=0.01), head - 6)
        assert [e["seq"] for e in got] == list(range(7, head + 1))
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(got))


def test_caught_up_it_waits_for_the_next_durable_entry(tmp_path: Path) -> None:
    with _log(tmp_path) as log:
        _add(log, 3)
        start = log.durable_seq + 1
        items = follow(log, start, heartbeat_s=BOUND)
        received: list[dict[str, Any]] = []
        done = threading.Event()

        def consume() -> None:
            received.extend(_take(items, 5))
            done.set()

        thread = threading.Thread(target=consume)
        thread.start()
        _add(log, 5)  # each record wakes the follower (no heartbeat needed)
        assert done.wait(BOUND)
        thread.join(BOUND)
        assert [e["seq"] for e in received] == list(range(start, start + 5))


def test_nothing_new_gives_a_heartbeat(tmp_path: Path) -> None:
    with _log(tmp_path) as log:
        items = follow(log, log.durable_seq + 1, heartbeat_s=0.01)
        assert next(items) is None


def test_a_follower_too_far_behind_is_told_where_to_resume(tmp_path: Path) -> None:
    with _log(tmp_path) as log:
        _add(log, 10)
        items = list(_take(follow(log, 2, max_lag=5, heartbeat_s=0.01), 1))
        assert isinstance(items[0], FollowEnd)
        assert items[0].code == "follower_too_slow" and items[0].resume_from_seq == 2


def test_a_log_replaced_under_a_follower_stops_it(tmp_path: Path) -> None:
    first, other = tmp_path / "a", tmp_path / "b"
    with _log(first) as log:
        _add(log, 4)
    with _log(other) as fresh:
        _add(fresh, 1)
    with _log(first) as log:
        items = follow(log, 1, heartbeat_s=0.01)
        assert [e["seq"] for e in _take(items, 3)] == [1, 2, 3]
        for path in first.glob("audit-*.jsonl"):
            path.unlink()
        for path in other.glob("audit-*.jsonl"):
            shutil.copy(path, first / f"audit-{9:06d}.jsonl")
        rest = [i for i in _take(items, 10) if isinstance(i, FollowEnd)]
        assert rest and rest[0].code == "chain_changed" and rest[0].resume_from_seq in (4, 5, 6)
