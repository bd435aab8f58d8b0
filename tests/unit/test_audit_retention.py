"""Retention on a real audit directory: old files archived or removed behind a signed base;
verification (in the daemon and offline) starts from the base; files deleted without the
policy, or a base nobody signed, are still caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from forgeoned.adapters.audit.anchor import AnchorKeeper
from forgeoned.adapters.audit.files import BASE_FILE, log_files, verify_directory
from forgeoned.adapters.audit.follow import FollowEnd, follow
from forgeoned.adapters.audit.key import CheckpointKey
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.retention import RetentionPolicy
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.files.state_store import StateStore
from forgeoned.cli.audit_offline import verify_offline
from forgeoned.core.audit_base import Base, base_message
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats


def _event(i: int) -> AuditEvent:
    return AuditEvent(EventName.PLUGIN_PAUSED, plugin="hello", actor="uid=0(root)",
                      message=f"pause {i} " + "x" * 200)  # fmt: skip


def _log(root: Path, keep: int, archive: Path | None = None) -> AuditLog:
    return AuditLog(root / "audit", ManualClock(), rotate_bytes=4096, checkpoint_every=10,
                    key_path=root / "audit" / "checkpoint.key",
                    retention=RetentionPolicy(keep, archive))  # fmt: skip


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record(_event(i))


def test_old_files_are_removed_behind_a_signed_base_and_the_log_still_verifies(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path, keep=3)
    _fill(log, 120)
    directory = tmp_path / "audit"
    assert len(log_files(directory)) <= 3
    base = Base.from_json((directory / BASE_FILE).read_bytes())
    archived = [e for e in log.entries() if e["event"] == "audit.archived"]
    assert archived and archived[-1]["details"]["last_seq"] == base.seq
    assert archived[0]["reason"] == "removed" and "audit-000001.jsonl" in base.files
    result = log.verify()
    assert result.ok and result.base_seq == base.seq and result.entries == log.head_seq
    log.close()
    pub = directory / "checkpoint.pub"
    offline = verify_offline(directory, pub)  # the auditor's form, against the pinned key
    assert offline["ok"] and offline["base_seq"] == base.seq


def test_archived_files_and_the_current_ones_verify_together_from_seq_1(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    log = _log(tmp_path, keep=2, archive=archive)
    _fill(log, 80)
    log.close()
    directory = tmp_path / "audit"
    assert next(e["reason"] for e in log.entries() if e["event"] == "audit.archived") == "archived"
    whole = tmp_path / "whole"
    whole.mkdir()
    for path in [*log_files(archive), *log_files(directory)]:
        shutil.copy(path, whole / path.name)
    shutil.copy(directory / "head.json", whole / "head.json")
    result = verify_directory(whole, (directory / "checkpoint.pub").read_bytes()[1:].hex())
    assert result.ok and result.base_seq == 0 and result.entries == log.head_seq


def test_files_deleted_without_the_policy_are_a_gap(tmp_path: Path) -> None:
    log = _log(tmp_path, keep=0)
    trail = AuditTrail(log, None, DaemonStats())
    keeper = AnchorKeeper(StateStore(tmp_path), log, trail, trail.outage)
    keeper.start()
    _fill(log, 80)
    directory = tmp_path / "audit"
    assert log.verify().ok
    log_files(directory)[0].unlink()  # the oldest file, by hand
    result = log.verify()
    assert not result.ok
    assert (
        "audit.gap (missing" in result.why and "files deleted without the retention" in result.why
    )
    gaps = [e for e in log.entries() if e["event"] == "audit.gap"]
    assert [g["reason"] for g in gaps] == ["missing"]
    log.close()
    assert not verify_directory(directory).ok  # offline: entry 1 is not there


def test_a_base_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    log = _log(tmp_path, keep=2)
    _fill(log, 80)
    log.close()
    directory = tmp_path / "audit"
    real = Base.from_json((directory / BASE_FILE).read_bytes())
    other = CheckpointKey.generate()
    forged = Base(real.seq + 5, "ab" * 32, other.public_hex,
                  other.sign(base_message(real.seq + 5, "ab" * 32, other.public_hex)),
                  (), real.files)  # fmt: skip
    (directory / BASE_FILE).write_bytes(forged.to_json())
    result = verify_directory(directory)
    assert not result.ok and "retention base" in result.why


@pytest.mark.parametrize("keep", [1, 2])
def test_the_file_being_written_is_never_taken_away(tmp_path: Path, keep: int) -> None:
    log = _log(tmp_path, keep=keep)
    _fill(log, 60)
    files = log_files(tmp_path / "audit")
    assert len(files) == keep
    last = json.loads(files[-1].read_bytes().splitlines()[-1])
    assert last["seq"] == log.head_seq
    assert log.verify().ok
    log.close()


def test_a_follower_asking_for_archived_entries_is_told_where_the_log_begins(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path, keep=2)
    _fill(log, 80)
    base = Base.from_json((tmp_path / "audit" / BASE_FILE).read_bytes())
    stream = follow(log, 1, heartbeat_s=0.01)
    end = next(stream)
    assert isinstance(end, FollowEnd) and end.code == "archived"
    assert end.resume_from_seq == base.seq + 1
    stream.close()  # type: ignore[attr-defined]
    stream = follow(log, end.resume_from_seq, heartbeat_s=0.01)
    first = next(stream)
    assert isinstance(first, dict) and first["seq"] == base.seq + 1
    stream.close()  # type: ignore[attr-defined]
    log.close()
