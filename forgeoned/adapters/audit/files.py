"""The audit log on disk: file names, reading lines and entries, the tail, offline verification.

Layout of ``STATE_DIR/audit/``: ``audit-000001.jsonl``, ``audit-000002.jsonl``, … (one chain
across all of them), ``head.json`` (the latest signed checkpoint), ``checkpoint.key`` and
``checkpoint.pub`` (the daemon's audit key), ``torn-*.bin`` (torn lines moved aside) and,
once old files were archived or removed by the retention policy, ``base.json``.
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
from forgeoned.core.audit_base import Base, start_of
from forgeoned.core.audit_chain import Line, SignedHead, VerifyResult, parse_rfc3339
from forgeoned.core.audit_walk import Resume, Start, resumed, walk_chain
from forgeoned.core.events import EventName
from forgeoned.errors import AuditError

NAME: Final = re.compile(r"^audit-(\d{6,})\.jsonl$")
BASE_FILE: Final = "base.json"  # the retention base (core/audit_base)


def log_files(directory: Path) -> list[Path]:
    """The log files of ``directory`` in chain order."""
    found = [(index_of(p), p) for p in directory.iterdir() if NAME.match(p.name)]
    return [p for _, p in sorted(found)]


def log_path(directory: Path, index: int) -> Path:
    return directory / f"audit-{index:06d}.jsonl"


def verify_directory(directory: Path, trusted_key: str | None = None) -> VerifyResult:
    """Verify a log without opening it for writing (no repair, no new entries).

    ``trusted_key`` (hex) defaults to ``checkpoint.pub`` in ``directory``; pass a copy kept
    elsewhere to also catch a replaced key. A ``base.json`` (retention) is followed.
    """
    key = trusted_key or read_public(public_path(directory / "checkpoint.key"))
    files = [(p, p.stat().st_size) for p in log_files(directory)]
    return walk_files(files, _read(directory / "head.json"), key, _read(directory / BASE_FILE))[0]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def walk_files(
    files: list[tuple[Path, int]],
    head_text: bytes | None,
    key: str,
    base_text: bytes | None = None,
    resume: Resume | None = None,
) -> tuple[VerifyResult, Resume | None]:
    """Verify ``files`` (each up to its length): from the retention base if there is one, from
    ``resume`` (the last verified checkpoint) if given and still there; the verdict and the
    last checkpoint verified."""
    if head_text is None:
        return VerifyResult(False, 0, None, "the signed head record head.json is missing"), None
    try:
        head = SignedHead.from_dict(json.loads(head_text))
    except (ValueError, KeyError, TypeError):
        return VerifyResult(False, 0, None, "the signed head record is unreadable"), None
    start = Start()
    if base_text is not None:
        try:
            start = start_of(Base.from_json(base_text), key, check_signature)
        except ValueError as exc:
            return VerifyResult(False, 0, 1, f"{exc} (retention base)"), None
    names = [p.name for p, _ in files]
    if resume is not None and resume.source in names and resume.start.seq >= start.seq:
        start = resumed(resume, base_seq=start.base_seq)
        at = names.index(resume.source)
        lines = read_lines(files[at:], resume.offset)
    else:
        lines = read_lines(files)
    return walk_chain(lines, check_signature, key, head, start)


def read_base(directory: Path) -> Base | None:
    """The retention base of ``directory`` (None: nothing was taken away; ValueError:
    unreadable)."""
    data = _read(directory / BASE_FILE)
    return Base.from_json(data) if data is not None else None


def read_lines(files: list[tuple[Path, int]], first_offset: int = 0) -> Iterator[Line]:
    """The lines of ``files`` in order, the first file read from ``first_offset`` on (a line
    boundary); each line knows its file, number (counted from there) and offset."""
    for i, (path, size) in enumerate(files):
        with path.open("rb") as handle:
            offset = first_offset if i == 0 else 0
            if offset:
                handle.seek(offset)
            remaining = size - offset
            for number, raw in enumerate(handle, start=1):
                if remaining <= 0:
                    break
                data = raw[:remaining]
                remaining -= len(data)
                yield Line(path.name, number, data, offset)
                offset += len(data)


def read_entries(files: list[tuple[Path, int]], since: float | None) -> Iterator[dict[str, Any]]:
    """The entries of ``files`` in order (``since``: epoch seconds, inclusive); skips
    unreadable lines."""
    for line in read_lines(files):
        try:
            entry = json.loads(line.data)
            if since is not None and parse_rfc3339(entry["ts"]) < since:
                continue
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(entry, dict):
            yield entry


def first_seq(directory: Path) -> int:
    """The seq of the first entry of the log files of ``directory`` (0: none)."""
    files = log_files(directory)
    if not files:
        return 0
    with files[0].open("rb") as handle:
        first = handle.readline()
    return int(json.loads(first)["seq"]) if first.endswith(b"\n") and parses(first) else 0


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
