"""Checkpoint-key rotation on a real audit directory: the old key signs the handover, a
verifier holding only the old (pinned) key follows it, offline and after retention took the
handover's file away; a key swapped without a signed handover is a broken chain; a crash in
the middle of a rotation is settled at the next start."""

from __future__ import annotations

import json
from pathlib import Path

from forgeoned.adapters.audit.anchor import AnchorKeeper
from forgeoned.adapters.audit.files import log_files
from forgeoned.adapters.audit.key import CheckpointKey, pending_path, read_public
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.retention import RetentionPolicy, read_handovers
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.files.state_store import StateStore
from forgeoned.cli.audit_offline import verify_offline
from forgeoned.core.audit_chain import checkpoint_message, entry_hash
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats


def _log(root: Path, keep: int = 0) -> AuditLog:
    return AuditLog(root / "audit", ManualClock(), rotate_bytes=4096, checkpoint_every=10,
                    retention=RetentionPolicy(keep))  # fmt: skip


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record(AuditEvent(EventName.PLUGIN_RESUMED, plugin="hello", actor="uid=0(root)",
                              message=f"resume {i} " + "y" * 150))  # fmt: skip


def _pin(root: Path) -> Path:
    pinned = root / "pinned.pub"
    pinned.write_bytes((root / "audit" / "checkpoint.pub").read_bytes())
    return pinned


def test_the_old_key_signs_the_handover_and_the_pinned_key_follows_it(tmp_path: Path) -> None:
    log = _log(tmp_path)
    pinned = _pin(tmp_path)
    old = log.public_key
    _fill(log, 15)
    answer = log.rotate_key("uid=0(root)")
    assert answer["old_key"] == old and answer["new_key"] == log.public_key != old
    _fill(log, 15)
    assert log.verify().ok
    [rotated] = [e for e in log.entries() if e["event"] == "audit.key_rotated"]
    assert rotated["details"]["old_key"] == old and rotated["seq"] == answer["seq"]
    checkpoints = [e["details"]["key"] for e in log.entries() if e["event"] == "audit.checkpoint"]
    assert old in checkpoints and log.public_key in checkpoints
    assert checkpoints.index(log.public_key) > checkpoints.index(old)
    log.close()
    directory = tmp_path / "audit"
    assert read_public(directory / "checkpoint.pub") == log.public_key
    assert verify_offline(directory, pinned)["ok"]  # the auditor's pinned (old) key
    reopened = _log(tmp_path)  # the new key is the one in force after a restart
    assert reopened.public_key == log.public_key and reopened.verify().ok
    reopened.close()


def test_a_forged_handover_breaks_the_chain(tmp_path: Path) -> None:
    log = _log(tmp_path)
    pinned = _pin(tmp_path)
    _fill(log, 5)
    log.rotate_key(None)
    log.close()
    directory = tmp_path / "audit"
    # The intruder rewrites everything from the handover on, consistently, under a key of
    # its own: every hash and checkpoint checks out; only the old key's signature does not.
    intruder = CheckpointKey.generate()
    prev, forging, head = "", False, {}
    for path in log_files(directory):
        lines = path.read_bytes().splitlines(True)
        for i, line in enumerate(lines):
            entry = json.loads(line)
            if entry["event"] == "audit.key_rotated":
                forging = True
                entry["details"]["new_key"] = intruder.public_hex
            if forging:
                entry["prev_hash"] = prev
                if entry["event"] == "audit.checkpoint":
                    entry["details"]["covers_hash"] = prev
                    entry["details"]["key"] = intruder.public_hex
                    entry["details"]["signature"] = intruder.sign(
                        checkpoint_message(entry["seq"] - 1, prev)
                    )
                entry["hash"] = entry_hash(entry)
                lines[i] = json.dumps(entry).encode() + b"\n"
                if entry["event"] == "audit.checkpoint":
                    head = {
                        "seq": entry["seq"],
                        "hash": entry["hash"],
                        "key": intruder.public_hex,
                        "signature": intruder.sign(checkpoint_message(entry["seq"], entry["hash"])),
                    }
            prev = entry["hash"]
        path.write_bytes(b"".join(lines))
    assert forging and head
    (directory / "head.json").write_text(json.dumps(head))
    result = verify_offline(directory, pinned)
    assert not result["ok"] and "key handover not signed by the key in force" in result["why"]


def test_a_key_replaced_without_a_handover_is_refused(tmp_path: Path) -> None:
    log = _log(tmp_path)
    pinned = _pin(tmp_path)
    _fill(log, 5)
    log.close()
    directory = tmp_path / "audit"
    (directory / "checkpoint.key").unlink()
    (directory / "checkpoint.pub").unlink()
    other = _log(tmp_path)  # a new key, no handover: what an intruder with the files can do
    _fill(other, 5)
    other.close()
    result = verify_offline(directory, pinned)
    assert not result["ok"] and "not the daemon's audit key" in result["why"]


def test_the_handover_outlives_its_file_in_the_retention_base(tmp_path: Path) -> None:
    log = _log(tmp_path, keep=2)
    pinned = _pin(tmp_path)
    _fill(log, 5)
    log.rotate_key("uid=0(root)")
    _fill(log, 80)
    log.close()
    directory = tmp_path / "audit"
    seqs = [json.loads(p.read_bytes().splitlines()[0])["seq"] for p in log_files(directory)]
    handover = read_handovers(directory)[0]
    assert handover.seq < seqs[0]  # its file is gone
    result = verify_offline(directory, pinned)
    assert result["ok"] and result["base_seq"] >= handover.seq


def test_the_anchor_follows_a_rotation_and_a_crash_in_one_is_settled(tmp_path: Path) -> None:
    log = _log(tmp_path)
    trail = AuditTrail(log, None, DaemonStats())
    keeper = AnchorKeeper(StateStore(tmp_path), log, trail, trail.outage)
    keeper.start()
    _fill(log, 5)
    log.rotate_key(None)
    assert keeper.anchor is not None and keeper.anchor.key == log.public_key
    assert log.verify().ok and keeper.anchor.gap is None
    log.close()
    # a rotation that died after writing its pending key, before the handover
    pending = pending_path(tmp_path / "audit" / "checkpoint.key")
    CheckpointKey.generate().save(pending)
    again = _log(tmp_path)
    assert not pending.exists() and again.public_key == log.public_key
    keeper = AnchorKeeper(StateStore(tmp_path), again, AuditTrail(again, None, DaemonStats()))
    keeper.start()
    assert again.verify().ok and keeper.anchor is not None and keeper.anchor.gap is None
    again.close()


def test_a_crash_after_the_handover_was_written_finishes_the_rotation(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    log = _log(tmp_path)
    _fill(log, 5)
    old_secret = (directory / "checkpoint.key").read_bytes()
    old_public = (directory / "checkpoint.pub").read_bytes()
    log.rotate_key(None)
    new_key = log.public_key
    log.close()
    # as if the daemon died after the handover entry, before the key file was replaced
    pending = pending_path(directory / "checkpoint.key")
    pending.write_bytes((directory / "checkpoint.key").read_bytes())
    (directory / "checkpoint.key").write_bytes(old_secret)
    (directory / "checkpoint.pub").write_bytes(old_public)
    (directory / "handovers.json").unlink()
    again = _log(tmp_path)
    assert again.public_key == new_key and not pending.exists()
    assert [h.new_key for h in read_handovers(directory)] == [new_key]
    assert again.verify().ok
    again.close()
