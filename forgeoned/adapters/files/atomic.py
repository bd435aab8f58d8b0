"""Crash-safe file replacement: write a temp file, fsync it, rename it over, fsync the directory.

After a crash at any point the path holds either the complete old content or the complete new
content, never a mix; a failed write (e.g. ENOSPC) leaves the old file untouched.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from forgeoned.errors import StateError


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably; raises :class:`StateError`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from exc


def ensure_dir(path: Path, mode: int = 0o750) -> None:
    """Create ``path`` and its parents (``mode``) if missing; StateError names it otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as exc:
        raise StateError(f"cannot create {path}: {exc.strerror}") from exc
