"""Incremental verification: the periodic check reads only what came since the last verified
checkpoint.

A full pass over a 1M-entry log costs seconds of CPU; repeated every ``verify_interval_s`` it
would be most of the daemon's work. :class:`ChainVerifier` remembers the last checkpoint a pass
verified (:class:`~forgeoned.core.audit_walk.Resume`: its file, byte offset, and the hash, key
and counts before it) and starts the next incremental pass on that very line, so the
checkpoint's signature and every entry after it are checked again, and nothing before it.

What it trusts from before: the files wholly before that line must be exactly as they were
(name, size, mtime, inode); any change, a file gone or added, a new retention base behind the
checkpoint, or a failed verdict, and the next pass is a full one. Edits inside the current
file *before* the checkpoint keep size and inode and may keep mtime: only a full pass sees
them, which runs at start, on every ``forgeonectl audit verify`` and every ``full_every``-th
periodic check.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from forgeoned.adapters.audit.files import BASE_FILE, log_files, walk_files
from forgeoned.core.audit_chain import VerifyResult
from forgeoned.core.audit_walk import Resume

Fingerprint = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The log as of one moment: files with the length to read, head.json, base.json."""

    files: list[tuple[Path, int]]
    head: bytes | None
    base: bytes | None

    @classmethod
    def take(cls, directory: Path) -> Snapshot:
        """The log files with their lengths now, head.json and base.json (call it where no
        write is half done)."""
        sizes = [(p, p.stat().st_size) for p in log_files(directory)]
        return cls(sizes, _read(directory / "head.json"), _read(directory / BASE_FILE))


class ChainVerifier:
    """Thread-safe; one per audit log (its own key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resume: Resume | None = None
        self._before: Fingerprint = ()
        self.full_runs = 0
        self.incremental_runs = 0

    def verify(self, snap: Snapshot, key: str, *, incremental: bool) -> VerifyResult:
        with self._lock:
            resume = self._resume if incremental else None
            if resume is not None and _fingerprint(snap.files, resume.source) != self._before:
                resume = None
            result, last = walk_files(snap.files, snap.head, key, snap.base, resume)
            if resume is not None:
                self.incremental_runs += 1
            else:
                self.full_runs += 1
            if result.ok and last is not None:
                self._resume, self._before = last, _fingerprint(snap.files, last.source)
            elif not result.ok:
                self._resume, self._before = None, ()
            return result

    def forget(self) -> None:
        """The next pass is a full one (the log was changed under us, e.g. a new chain)."""
        with self._lock:
            self._resume, self._before = None, ()


def _fingerprint(files: list[tuple[Path, int]], until: str) -> Fingerprint:
    """Name, size, mtime and inode of each file before ``until``."""
    out: list[tuple[str, int, int, int]] = []
    for path, _ in files:
        if path.name == until:
            break
        try:
            st = path.stat()
        except FileNotFoundError:
            out.append((path.name, -1, -1, -1))
            continue
        out.append((path.name, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
