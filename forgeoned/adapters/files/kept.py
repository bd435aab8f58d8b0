"""The kept copies of active versions: ``STATE_DIR/artifacts/<sha256>.wasm`` (and ``.sig``).

Implements :class:`forgeoned.core.ports.KeptCopies` for the active set. A durable write is
:func:`atomic_write` (fsync, rename, fsync the directory); a batch of writes during the
daemon start is written by rename only and made durable by one :meth:`KeptCopiesDir.sync`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from forgeoned.adapters.files.atomic import atomic_write, ensure_dir
from forgeoned.errors import StateError

_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})  # as pathlib


class KeptCopiesDir:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        ensure_dir(directory, 0o700)

    def exists(self, name: str) -> bool:
        """``Path.exists`` as a plain stat on a string (asked for every plugin at a start)."""
        try:
            os.stat(f"{self.directory}/{name}")  # noqa: PTH116  (no Path built per call)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return False
            raise
        return True

    def write(self, name: str, data: bytes, *, durable: bool = True) -> None:
        path = self.directory / name
        if durable:
            atomic_write(path, data)
        else:
            _write_unsynced(path, data)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except OSError:
            return None

    def delete(self, name: str) -> None:
        with contextlib.suppress(OSError):
            (self.directory / name).unlink()

    def sync(self) -> None:
        os.sync()  # every unsynced write of the batch at once


def _write_unsynced(path: Path, data: bytes) -> None:
    """Write ``path`` by rename (never torn); synced with everything else at the batch end."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from exc
