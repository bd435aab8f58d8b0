"""The audit log adapter on a real temp directory: durability, rotation, resume, torn lines."""

from __future__ import annotations

import itertools
import json
import math
import threading
from pathlib import Path

import pytest

from forgeoned.adapters.audit.files import verify_directory
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.audit_chain import GENESIS_HASH, entry_hash
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.errors import AuditError


def _event(i: int = 0) -> AuditEvent:
    return AuditEvent(
        EventName.PLUGIN_INSTALLED,
        plugin="hello",
        version=f"1.{i}.0",
        sha256="ab" * 32,
        actor="uid:0",
        details={"signers": ["k1"]},
    )


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("audit-*.jsonl"))


def _all_lines(directory: Path) -> list[bytes]:
    return [line for path in _files(directory) for line in path.read_bytes().splitlines(True)]


def test_record_returns_the_stored_entry_and_it_is_on_disk(tmp_path: Path) -> None:
    clock = ManualClock()
    log = AuditLog(tmp_path, clock)
    entry = log.record(_event())
    assert entry["seq"] == 2  # seq 1 is the genesis checkpoint
    assert entry["event"] == "plugin.installed"
    assert entry["plugin"] == "hello" and entry["actor"] == "uid:0"
    assert entry["ts"].endswith("Z") and entry["ts"].startswith("2023-11-14T22:13:20")
    assert entry["hash"] == entry_hash(entry)
    on_disk = [json.loads(line) for line in _all_lines(tmp_path)]
    assert on_disk[0]["event"] == "audit.checkpoint"
    assert on_disk[0]["prev_hash"] == GENESIS_HASH
    assert on_disk[-1] == entry
    assert log.verify().ok
    log.close()
    log.close()  # idempotent


def test_key_is_private_and_kept_across_restarts(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    first = log.public_key
    log.close()
    assert (tmp_path / "checkpoint.key").stat().st_mode & 0o777 == 0o600
    again = AuditLog(tmp_path, ManualClock())
    assert again.public_key == first
    again.close()


def test_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock(), rotate_bytes=1500, checkpoint_every=7)
    for i in range(30):
        log.record(_event(i))
    files = _files(tmp_path)
    assert len(files) > 3
    for earlier, later in itertools.pairwise(files):
        last = json.loads(earlier.read_bytes().splitlines()[-1])
        first = json.loads(later.read_bytes().splitlines()[0])
        assert first["prev_hash"] == last["hash"]
        assert first["seq"] == last["seq"] + 1
    result = log.verify()
    assert result.ok, result
    assert result.checkpoints_checked >= 5
    log.close()


def test_resume_after_restart_continues_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock(), rotate_bytes=2000)
    for i in range(10):
        log.record(_event(i))
    log.close()
    before = list(AuditLog(tmp_path, ManualClock()).entries())
    log = AuditLog(tmp_path, ManualClock(), rotate_bytes=2000)
    entry = log.record(_event(99))
    assert entry["seq"] == before[-1]["seq"] + 1
    assert entry["prev_hash"] == before[-1]["hash"]
    assert log.verify().ok
    log.close()


def test_torn_last_line_is_detected_kept_out_and_recorded(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    for i in range(5):
        log.record(_event(i))
    log.close()
    kept = list(AuditLog(tmp_path, ManualClock()).entries())
    # a crash mid-write: half a line without its newline at the end of the last file
    last_file = _files(tmp_path)[-1]
    with last_file.open("ab") as handle:
        handle.write(b'{"event":"plugin.installed","seq":')
    log = AuditLog(tmp_path, ManualClock())
    assert list(log.entries())[: len(kept)] == kept  # nothing before the torn line lost
    recovered = list(log.entries())[len(kept)]
    assert recovered["event"] == "audit.recovered"
    assert recovered["reason"] == "torn_write"
    assert recovered["details"]["bytes"] == len(b'{"event":"plugin.installed","seq":')
    saved = tmp_path / recovered["details"]["saved_as"]
    assert saved.read_bytes() == b'{"event":"plugin.installed","seq":'
    assert log.verify().ok
    assert log.take_internal()[0]["event"] == "audit.recovered"
    log.close()


def test_verify_names_a_torn_line_before_repair(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.record(_event())
    last_file = _files(tmp_path)[-1]
    with last_file.open("ab") as handle:
        handle.write(b'{"seq":3')
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == log.head_seq + 1
    assert "truncated" in result.why


def test_checkpoint_after_interval_on_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    log = AuditLog(tmp_path, clock, checkpoint_every=1000, checkpoint_interval_s=60)
    log.record(_event(1))
    assert log.take_internal()[-1]["seq"] == 1  # only the genesis one so far
    clock.advance(61)
    entry = log.record(_event(2))
    checkpoints = log.take_internal()
    assert [c["details"]["covers_seq"] for c in checkpoints] == [entry["seq"]]
    head = json.loads((tmp_path / "head.json").read_bytes())
    assert head["seq"] == entry["seq"] + 1
    log.close()


def test_entries_since_filters_by_timestamp(tmp_path: Path) -> None:
    clock = ManualClock()
    log = AuditLog(tmp_path, clock)
    log.record(_event(1))
    clock.advance(100)
    cut = clock.wall()
    log.record(_event(2))
    log.record(_event(3))
    assert [e.get("version") for e in log.entries(since=cut)] == ["1.2.0", "1.3.0"]
    assert len(list(log.entries())) == 4
    log.close()


def test_concurrent_records_get_unique_seqs_and_one_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock(), rotate_bytes=8000, checkpoint_every=50)
    seqs: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(40):
            entry = log.record(_event(n * 100 + i))
            with lock:
                seqs.append(entry["seq"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(set(seqs)) == 240
    result = log.verify()
    assert result.ok, result
    assert result.entries == log.head_seq
    log.close()


def test_unrepresentable_event_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.record(_event())
    before = _all_lines(tmp_path)
    bad = AuditEvent(EventName.PLUGIN_FAILED, plugin="hello", details={"x": math.nan})
    with pytest.raises(AuditError, match="not representable as JSON"):
        log.record(bad)
    assert _all_lines(tmp_path) == before
    assert log.record(_event(5))["seq"] == 3
    assert log.verify().ok
    log.close()


def test_record_after_close_is_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.close()
    before = _all_lines(tmp_path)
    with pytest.raises(AuditError, match="closed"):
        log.record(_event())
    assert _all_lines(tmp_path) == before


def test_non_string_details_are_stored_as_strings(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    entry = log.record(AuditEvent(EventName.PLUGIN_FAILED, details={"path": tmp_path}))
    assert entry["details"] == {"path": str(tmp_path)}
    assert log.verify().ok
    log.close()


def test_offline_verify_reads_without_writing(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.record(_event())
    log.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert verify_directory(tmp_path).ok
    with _files(tmp_path)[-1].open("ab") as handle:
        handle.write(b'{"seq":')
    result = verify_directory(tmp_path)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "truncated" in result.why
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after.keys() == before.keys()  # nothing repaired, nothing added


def test_corrupt_audit_key_is_refused_and_left_alone(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.record(_event())
    log.close()
    key = tmp_path / "checkpoint.key"
    key.write_bytes(b"\x81" + b"\x00" * 10)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(AuditError, match="not a 65-byte Ed25519 secret key"):
        AuditLog(tmp_path, ManualClock())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_new_key_over_an_old_log_is_detected(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.record(_event())
    log.close()
    (tmp_path / "checkpoint.key").unlink()
    (tmp_path / "checkpoint.pub").unlink()
    again = AuditLog(tmp_path, ManualClock())  # generates a fresh key
    result = again.verify()
    assert not result.ok
    assert result.first_bad_seq == 1
    assert "not the daemon's audit key" in result.why
    again.close()
