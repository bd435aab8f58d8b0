"""Watching plugins.d (watchdog/inotify) and reading artifact files safely.

Events are only hints: a file written in place reports ``close_write``, a file renamed in
reports a create (or a move), and an inotify queue overflow is silently dropped by the
library. So the watcher reports *which names may have changed*, debounced and in batches, and
the daemon re-reads those files; a full rescan (at start, on SIGHUP, on a timer) reconciles
whatever was missed.

A file that was created but is still being modified is held until it is closed (or stays
quiet for ``settle_s``), so that a file written slowly in pieces is not read half-written. A
writer may pause longer than that: :meth:`DirectoryWatcher.is_writing` then still says the file
is open for writing (a create/modify was seen and no close, rename or delete since, within
``write_grace_s``), and the daemon holds a file that fails to verify instead of rejecting it
(a spurious ``plugin.rejected`` for a half-written file is noise an operator would chase). The
kernel reports the close even when the writer dies, so only a writer that keeps the file open
without writing for ``write_grace_s`` gets its half-written file rejected.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Final

from watchdog.events import (
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from forgeoned.errors import ArtifactError, ArtifactTooLargeError

ARTIFACT_SUFFIX: Final = ".wasm"
SIG_SUFFIX: Final = ".wasm.sig"
RENAME_DELAY_S: Final = 0.001  # just enough to batch the two halves of a rename
WRITE_GRACE_S: Final = 30.0  # a file modified without a close is "being written" this long
_IGNORED: Final = ("*~", "*.swp", "*.swx", "*.tmp", "#*#", "*.part", "*.crdownload")


class UnsafeFileError(ArtifactError):
    """A symlink, FIFO, device, directory or socket where a plugin file was expected."""

    reason = "unsafe_file"


class UnreadableFileError(ArtifactError):
    reason = "unreadable"


class FileChangedError(Exception):
    """The file changed while it was read; read it again later (not a rejection)."""


def artifact_name(filename: str) -> str | None:
    """The artifact file a directory entry belongs to, or None if it is to be ignored."""
    if filename.startswith((".", "#")) or any(fnmatch(filename, p) for p in _IGNORED):
        return None
    if filename.endswith(SIG_SUFFIX):
        return filename[: -len(".sig")]
    if filename.endswith(ARTIFACT_SUFFIX) and len(filename) > len(ARTIFACT_SUFFIX):
        return filename
    return None


@dataclass(frozen=True, slots=True)
class Identity:
    """What tells two versions of a file apart without reading it."""

    inode: int
    size: int
    mtime_ns: int
    mode: int  # a chmod that makes an unreadable file readable is a change too

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    data: bytes
    detached: bytes | None
    identity: Identity


def _read_regular(path: Path, max_bytes: int) -> tuple[bytes, Identity]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(f"{path.name}: is a symlink (never followed)") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise UnreadableFileError(f"{path.name}: permission denied") from None
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(path) from None
        raise UnreadableFileError(f"{path.name}: cannot open: {exc.strerror}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            kind = "FIFO" if stat.S_ISFIFO(before.st_mode) else "not a regular file"
            raise UnsafeFileError(f"{path.name}: is a {kind} (rejected)")
        if before.st_size > max_bytes:
            raise ArtifactTooLargeError(f"{path.name}: {before.st_size} bytes, over {max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ArtifactTooLargeError(f"{path.name}: grew over {max_bytes} bytes")
        after = os.fstat(fd)
    except OSError as exc:
        raise UnreadableFileError(f"{path.name}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    ident = Identity.of(before)
    if Identity.of(after) != ident or total != before.st_size:
        raise FileChangedError(path.name)
    try:
        now = path.lstat()
    except FileNotFoundError:
        raise FileChangedError(path.name) from None
    if Identity.of(now) != ident:
        raise FileChangedError(path.name)  # replaced by another file while we read
    return b"".join(chunks), ident


def read_artifact(path: Path, max_bytes: int) -> ArtifactFile:
    """Read ``path`` (and ``path.sig``) without following symlinks; raises on anything odd.

    Raises :class:`FileNotFoundError` if it is gone, :class:`FileChangedError` if it changed
    while being read, :class:`ArtifactError` subclasses for files that must be rejected.
    """
    data, ident = _read_regular(path, max_bytes)
    sig_path = path.with_name(path.name + ".sig")
    try:
        detached, _ = _read_regular(sig_path, 64 * 1024)
    except FileNotFoundError:
        detached = None
    return ArtifactFile(data, detached, ident)


def list_artifacts(directory: Path) -> list[str]:
    """Names of candidate artifact files in ``directory`` (not following anything)."""
    names = set()
    with os.scandir(directory) as it:
        for entry in it:
            name = artifact_name(entry.name)
            if name is not None and name == entry.name:
                names.add(name)
    return sorted(names)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DirectoryWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        w = self.watcher
        if isinstance(event, FileMovedEvent):  # a rename is atomic: the file is complete
            w.note(os.fsdecode(event.src_path), final=True, delay=RENAME_DELAY_S)
            w.note(os.fsdecode(event.dest_path), final=True, delay=RENAME_DELAY_S)
        elif isinstance(event, FileClosedEvent | FileDeletedEvent | FileAttribEvent):
            w.note(os.fsdecode(event.src_path), final=True)
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            w.note(os.fsdecode(event.src_path), final=False)


class DirectoryWatcher:
    """Reports batches of possibly changed artifact names of one directory."""

    def __init__(
        self,
        directory: Path,
        on_changes: Callable[[set[str]], None],
        debounce_s: float = 0.05,
        settle_s: float = 2.0,
        write_grace_s: float = WRITE_GRACE_S,
    ) -> None:
        self.directory = directory
        self.on_changes = on_changes
        self.debounce_s = debounce_s
        self.settle_s = settle_s
        self.write_grace_s = write_grace_s
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._writing: dict[str, float] = {}  # name -> last create/modify not yet closed
        self._closed = False
        self._observer = Observer()
        self._observer.schedule(_Handler(self), str(directory), recursive=False)
        self._thread = threading.Thread(target=self._run, name="forgeoned-watch", daemon=True)

    def start(self) -> None:
        self._observer.start()
        self._thread.start()

    def note(self, path: str, final: bool, delay: float | None = None) -> None:
        """An event for ``path``: report it after the debounce (or settle) delay."""
        p = Path(path)
        if p.parent != self.directory:
            return
        name = artifact_name(p.name)
        if name is None:
            return
        if delay is None:
            delay = self.debounce_s if final else self.settle_s
        with self._cond:
            now = time.monotonic()
            if final:
                self._writing.pop(name, None)
            else:
                self._writing[name] = now
            current = self._due.get(name)
            if final or current is None or current - now < delay:
                self._due[name] = now + delay
            self._cond.notify()

    def is_writing(self, name: str) -> bool:
        """Whether artifact ``name`` is still open for writing, as far as inotify tells."""
        with self._cond:
            since = self._writing.get(name)
            if since is None:
                return False
            if time.monotonic() - since >= self.write_grace_s:
                del self._writing[name]
                return False
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    ready = {n for n, t in self._due.items() if t <= now}
                    if ready:
                        for n in ready:
                            del self._due[n]
                        break
                    timeout = min(self._due.values()) - now if self._due else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
            self.on_changes(ready)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._observer.stop()
        self._observer.join(timeout=5)
        if self._thread.is_alive():
            self._thread.join(timeout=5)
