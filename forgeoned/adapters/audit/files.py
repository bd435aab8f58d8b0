"""The audit log on disk: file names, reading lines, the last line, offline verification.

Layout of ``STATE_DIR/audit/``: ``audit-000001.jsonl``, ``audit-000002.jsonl``, … (one chain
across all of them), ``head.json`` (the latest signed checkpoint), ``checkpoint.key`` and
``checkpoint.pub`` (the daemon's audit key) and ``torn-*.bin`` (torn lines moved aside).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from forgeoned.adapters.audit.key import check_signature, public_path, read_public
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.core import audit_chain
from forgeoned.core.audit_chain import Line, SignedHead, VerifyResult
from forgeoned.core.events import EventName
from forgeoned.errors import AuditError

NAME: Final = re.compile(r"^audit-(\d{6,})\.jsonl$")


def log_files(directory: Path) -> list[Path]:
    """The log files of ``directory`` in chain order."""
    found = [(index_of(p), p) for p in directory.iterdir() if NAME.match(p.name)]
    return [p for _, p in sorted(found)]


def log_path(directory: Path, index: int) -> Path:
    return directory / f"audit-{index:06d}.jsonl"


def verify_directory(directory: Path, trusted_key: str | None = None) -> VerifyResult:
    """Verify a log without opening it for writing (no repair, no new entries).

    ``trusted_key`` (hex) defaults to ``checkpoint.pub`` in ``directory``; pass a copy kept
    elsewhere to also catch a replaced key.
    """
    key = trusted_key or read_public(public_path(directory / "checkpoint.key"))
    found = [(index_of(p), p) for p in directory.iterdir() if NAME.match(p.name)]
    files = [(p, p.stat().st_size) for _, p in sorted(found)]
    try:
        head: bytes | None = (directory / "head.json").read_bytes()
    except FileNotFoundError:
        head = None
    return verify_files(files, head, key)


def verify_files(files: list[tuple[Path, int]], head_text: bytes | None, key: str) -> VerifyResult:
    if head_text is None:
        return VerifyResult(False, 0, None, "the signed head record head.json is missing")
    try:
        head = SignedHead.from_dict(json.loads(head_text))
    except (ValueError, KeyError, TypeError):
        return VerifyResult(False, 0, None, "the signed head record is unreadable")
    return audit_chain.verify_chain(read_lines(files), check_signature, key, head)


def read_lines(files: list[tuple[Path, int]]) -> Iterator[Line]:
    for path, size in files:
        with path.open("rb") as handle:
            remaining = size
            for number, raw in enumerate(handle, start=1):
                if remaining <= 0:
                    break
                data = raw[:remaining]
                remaining -= len(data)
                yield Line(path.name, number, data)


def last_seq(directory: Path) -> int:
    """The seq of the last complete entry in the log files of ``directory`` (0: none)."""
    for path in reversed(log_files(directory)):
        last = tail(path)[1]
        if last.endswith(b"\n") and parses(last):
            return int(json.loads(last)["seq"])
    return 0


def entry_at(directory: Path, seq: int) -> dict[str, Any] | None:
    """The entry with ``seq`` (read from the one file that can hold it), or None."""
    chosen: Path | None = None
    for path in log_files(directory):
        with path.open("rb") as handle:
            first = handle.readline()
        if not first.endswith(b"\n") or not parses(first) or json.loads(first)["seq"] > seq:
            break
        chosen = path
    if chosen is None:
        return None
    marker = b'"seq":%d,' % seq  # canonical lines: only parse the one that may match
    with chosen.open("rb") as handle:
        for line in handle:
            if marker in line and line.endswith(b"\n") and parses(line):
                entry: dict[str, Any] = json.loads(line)
                if entry["seq"] == seq:
                    return entry
    return None


def index_of(path: Path) -> int:
    match = NAME.match(path.name)
    return int(match.group(1)) if match else 0


def parses(line: bytes) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and isinstance(entry.get("seq"), int) and "hash" in entry


def tail(path: Path) -> tuple[int, bytes]:
    """Offset and bytes of the last line of ``path`` (``(0, b"")`` when it is empty)."""
    with path.open("rb") as handle:
        pos = handle.seek(0, os.SEEK_END)
        buf = b""
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            handle.seek(pos)
            buf = handle.read(step) + buf
            cut = buf.rfind(b"\n", 0, len(buf) - 1)
            if cut >= 0:
                return pos + cut + 1, buf[cut + 1 :]
        return 0, buf


def cut_torn_tail(path: Path, now: int) -> dict[str, Any] | None:
    """Move a torn final line of ``path`` aside; return the ``audit.recovered`` fields if cut."""
    offset, last = tail(path)
    if not last or (last.endswith(b"\n") and parses(last)):
        return None
    saved = path.with_name(f"torn-{path.stem}-{now}.bin")
    try:
        atomic_write(saved, last)
        with path.open("r+b") as handle:
            handle.truncate(offset)
            os.fsync(handle.fileno())
    except OSError as exc:
        raise AuditError(f"cannot repair torn audit line in {path}: {exc}") from exc
    return {
        "event": EventName.AUDIT_RECOVERED.label,
        "actor": "forgeoned",
        "reason": "torn_write",
        "message": f"dropped a torn final line ({len(last)} bytes) from {path.name}",
        "details": {
            "file": path.name,
            "offset": offset,
            "bytes": len(last),
            "sha256": hashlib.sha256(last).hexdigest(),
            "saved_as": saved.name,
        },
    }
