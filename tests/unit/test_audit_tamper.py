"""Tampering with the audit log: verify names the first bad seq and why, and loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import nacl.signing

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.audit_chain import GENESIS_HASH, canonical, checkpoint_message, entry_hash
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName


def _filled(directory: Path, n: int = 12, every: int = 5) -> AuditLog:
    log = AuditLog(directory, ManualClock(), rotate_bytes=3000, checkpoint_every=every)
    for i in range(n):
        log.record(AuditEvent(EventName.PLUGIN_UPGRADED, plugin="p", version=f"1.{i}.0"))
    return log


def _lines(directory: Path) -> list[tuple[Path, list[bytes]]]:
    return [(p, p.read_bytes().splitlines(True)) for p in sorted(directory.glob("audit-*.jsonl"))]


def _rewrite(directory: Path, fn: object) -> None:
    """Apply ``fn(list of all lines) -> list of lines`` keeping the file boundaries."""
    files = _lines(directory)
    flat = [line for _, lines in files for line in lines]
    new = fn(flat)  # type: ignore[operator]
    start = 0
    for index, (path, lines) in enumerate(files):
        end = len(new) if index == len(files) - 1 else start + len(lines)
        path.write_bytes(b"".join(new[start:end]))
        start = end


def _at_seq(lines: list[bytes], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if json.loads(line)["seq"] == seq)


def test_edited_entry_is_named(tmp_path: Path) -> None:
    log = _filled(tmp_path)

    def edit(lines: list[bytes]) -> list[bytes]:
        i = _at_seq(lines, 6)
        lines[i] = lines[i].replace(b'"p"', b'"evil"')
        return lines

    _rewrite(tmp_path, edit)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert "does not match its hash" in result.why
    assert result.entries == 5
    assert log.last_verify == result
    # nothing else lost: every entry is still exported
    assert [e["seq"] for e in log.entries()] == list(range(1, log.head_seq + 1))


def test_deleted_entry_is_named(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    _rewrite(tmp_path, lambda lines: [x for x in lines if json.loads(x)["seq"] != 4])
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "missing" in result.why


def test_reordered_entries_are_named(tmp_path: Path) -> None:
    log = _filled(tmp_path)

    def swap(lines: list[bytes]) -> list[bytes]:
        i = _at_seq(lines, 5)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return lines

    _rewrite(tmp_path, swap)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "out of order" in result.why


def test_truncated_entry_in_the_middle_is_named(tmp_path: Path) -> None:
    log = _filled(tmp_path)

    def cut(lines: list[bytes]) -> list[bytes]:
        i = _at_seq(lines, 9)
        lines[i] = lines[i][:40] + b"\n"
        return lines

    _rewrite(tmp_path, cut)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 9)
    assert "not valid JSON" in result.why


def test_removed_tail_is_caught_by_the_signed_head(tmp_path: Path) -> None:
    log = _filled(tmp_path, n=12, every=5)
    log.checkpoint()
    head = json.loads((tmp_path / "head.json").read_bytes())["seq"]
    _rewrite(tmp_path, lambda lines: [x for x in lines if json.loads(x)["seq"] < head - 3])
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == head - 3
    assert "truncated" in result.why


def _rebuild(lines: list[bytes], key: nacl.signing.SigningKey | None) -> list[bytes]:
    """An attacker's consistent rewrite: new content, every hash recomputed from scratch."""
    out: list[bytes] = []
    prev = GENESIS_HASH
    for raw in lines:
        entry = json.loads(raw)
        entry.pop("hash")
        entry["prev_hash"] = prev
        if entry.get("plugin") == "p":
            entry["plugin"] = "other"
        if entry["event"] == "audit.checkpoint":
            entry["details"]["covers_hash"] = prev
            if key is not None:
                message = checkpoint_message(entry["seq"] - 1, prev)
                entry["details"]["key"] = bytes(key.verify_key).hex()
                entry["details"]["signature"] = key.sign(message).signature.hex()
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        out.append(canonical(entry) + b"\n")
    return out


def test_replaced_whole_chain_without_the_key_is_caught(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    _rewrite(tmp_path, lambda lines: _rebuild(lines, None))
    result = log.verify()
    assert not result.ok
    # the genesis checkpoint still holds; the first one after the rewritten entries fails
    assert result.first_bad_seq == 7
    assert "checkpoint signature is invalid" in result.why


def test_replaced_chain_signed_with_another_key_is_caught(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    attacker = nacl.signing.SigningKey.generate()
    _rewrite(tmp_path, lambda lines: _rebuild(lines, attacker))
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == 1
    assert "not the daemon's audit key" in result.why


def test_replaced_chain_head_and_key_is_caught_with_a_pinned_key(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    pinned = log.public_key
    log.close()
    # the attacker rebuilds everything from scratch with a key of their own
    for path in tmp_path.iterdir():
        path.unlink()
    forged = _filled(tmp_path)
    assert forged.verify().ok  # self-consistent...
    result = forged.verify(trusted_key=pinned)  # ...but not under the key pinned earlier
    assert not result.ok
    assert result.first_bad_seq == 1
    assert "not the daemon's audit key" in result.why


def test_missing_signed_head_is_reported(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    (tmp_path / "head.json").unlink()
    result = log.verify()
    assert not result.ok
    assert "head.json is missing" in result.why


def test_forged_head_record_is_caught(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    head_path = tmp_path / "head.json"
    head = json.loads(head_path.read_bytes())
    head["signature"] = "00" * 64
    head_path.write_text(json.dumps(head))
    entries_before = list(log.entries())
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, head["seq"])
    assert "signed head record has an invalid signature" in result.why
    assert list(log.entries()) == entries_before  # verification changes nothing


def test_the_log_knows_when_its_files_end_before_what_it_wrote(tmp_path: Path) -> None:
    log = _filled(tmp_path, n=12)  # several files (rotate_bytes=3000)
    assert len(_lines(tmp_path)) > 1
    written = log.head_seq
    assert log.ends() == (written, written)
    newest, lines = _lines(tmp_path)[-1]
    newest.write_bytes(b"".join(lines[:-2]))  # its last two entries cut away
    assert log.ends() == (written - 2, written)
    newest.unlink()  # the newest file gone: the disk ends in the file before it
    on_disk, was = log.ends()
    assert was == written and on_disk < written - 2
    log.close()
