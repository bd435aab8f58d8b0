"""Watching plugins.d with watchdog (inotify): which artifact names may have changed.

Events are only hints: a file written in place reports ``close_write``, a file renamed in
reports a create (or a move), and an inotify queue overflow loses events. So the watcher
reports *which names may have changed*, debounced and in batches, and the daemon re-reads
those files; a full rescan (at start, on SIGHUP, on a timer) reconciles whatever was missed.
When to report, and whether a file still counts as being written, is the
:class:`~forgeoned.adapters.files.changes.ChangeSchedule`'s (the timing policy, on an
injected clock); this module only turns watchdog events into its inputs and runs the thread
that delivers the reports.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

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

from forgeoned.adapters.files.artifact_read import artifact_name
from forgeoned.adapters.files.changes import (
    REOPEN_S,
    SETTLE_S,
    WRITE_GRACE_S,
    Change,
    ChangeSchedule,
)
from forgeoned.core.clock import SystemClock
from forgeoned.core.ports import Clock


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DirectoryWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        w = self.watcher
        if isinstance(event, FileMovedEvent):
            w.note(os.fsdecode(event.src_path), Change.RENAMED)
            w.note(os.fsdecode(event.dest_path), Change.RENAMED)
        elif isinstance(event, FileClosedEvent):
            w.note(os.fsdecode(event.src_path), Change.CLOSED)
        elif isinstance(event, FileDeletedEvent | FileAttribEvent):
            w.note(os.fsdecode(event.src_path), Change.OTHER)
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            w.note(os.fsdecode(event.src_path), Change.WRITTEN)


class DirectoryWatcher:
    """Reports batches of possibly changed artifact names of one directory."""

    def __init__(
        self,
        directory: Path,
        on_changes: Callable[[set[str]], None],
        debounce_s: float = 0.05,
        settle_s: float = SETTLE_S,
        write_grace_s: float = WRITE_GRACE_S,
        *,
        reopen_s: float = REOPEN_S,
        clock: Clock | None = None,
    ) -> None:
        self.directory = directory
        self.on_changes = on_changes
        self.clock = clock or SystemClock()
        self.schedule = ChangeSchedule(self.clock, debounce_s, settle_s, reopen_s, write_grace_s)
        self._cond = threading.Condition()
        self._closed = False
        self._observer = Observer()
        self._observer.schedule(_Handler(self), str(directory), recursive=False)
        self._thread = threading.Thread(target=self._run, name="forgeoned-watch", daemon=True)

    def start(self) -> None:
        self._observer.start()
        self._thread.start()

    def note(self, path: str, change: Change) -> None:
        """An event for ``path`` (ignored unless it names an artifact of this directory)."""
        p = Path(path)
        if p.parent != self.directory:
            return
        name = artifact_name(p.name)
        if name is None:
            return
        with self._cond:
            self.schedule.note(name, change)
            self._cond.notify()

    def is_writing(self, name: str) -> bool:
        """Whether artifact ``name`` is still being written, as far as inotify tells."""
        with self._cond:
            return self.schedule.is_writing(name)

    def wake(self) -> None:
        """Look at the schedule again now, for a clock that jumps (tests drive one)."""
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    ready = self.schedule.take_ready()
                    if ready:
                        break
                    due = self.schedule.next_due()
                    timeout = None if due is None else max(0.0, due - self.clock.monotonic())
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
