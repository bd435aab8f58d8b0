"""When to report a changed plugins.d file, and whether it is still being written.

The timing policy of the watcher, without threads or inotify: events go in (:meth:`note`),
names due for a report come out (:meth:`take_ready`), all against an injected
:class:`~forgeoned.core.ports.Clock` so that tests drive it with a manual clock.

- A rename (in or out) is atomic: reported after :data:`RENAME_DELAY_S`, just enough to batch
  the two halves of it. A close after writing, a delete or a chmod: after ``debounce_s``.
- A file created or modified but not closed is reported once it was quiet for ``settle_s``,
  and counts as *being written* (:meth:`is_writing`) until it is closed, renamed or deleted,
  or stays quiet for ``write_grace_s`` (a writer that died still gets its close reported by
  the kernel; only one that keeps the file open without writing reaches the grace).
- A writer that reopens the file for every chunk closes it between chunks: after each close
  the file still counts as being written for ``reopen_s``, and is reported once more when
  that window ends with no new write, so that the daemon holds a half-written file instead of
  rejecting it and judges it when the writer is really done. The whole run of such writes is
  bounded by ``write_grace_s`` from its first write: a writer that never stops is judged.

Not thread-safe: :class:`~forgeoned.adapters.files.observer.DirectoryWatcher` serialises the
calls under its lock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from forgeoned.core.ports import Clock

RENAME_DELAY_S: Final = 0.001
SETTLE_S: Final = 2.0
REOPEN_S: Final = 1.0  # a writer reopening the file within this after a close still writes it
WRITE_GRACE_S: Final = 30.0  # how long a file may count as being written without a break


class Change(enum.Enum):
    """What an inotify event says about a file."""

    WRITTEN = "written"  # created or modified; still open for writing
    CLOSED = "closed"  # closed after writing in place
    RENAMED = "renamed"  # moved in or out: complete as it is
    OTHER = "other"  # deleted, or its mode or owner changed


@dataclass(slots=True)
class _Run:
    """A run of in-place writes to one file, possibly over several open/close cycles."""

    started: float
    closed: float | None = None  # the last close, or None while open


class ChangeSchedule:
    def __init__(
        self,
        clock: Clock,
        debounce_s: float = 0.05,
        settle_s: float = SETTLE_S,
        reopen_s: float = REOPEN_S,
        write_grace_s: float = WRITE_GRACE_S,
    ) -> None:
        self.clock = clock
        self.debounce_s = debounce_s
        self.settle_s = settle_s
        self.reopen_s = reopen_s
        self.write_grace_s = write_grace_s
        self._due: dict[str, float] = {}  # name -> when to report it
        self._open: dict[str, float] = {}  # name -> last write not yet followed by a close
        self._runs: dict[str, _Run] = {}  # name -> the run of in-place writes it is in
        self._recheck: dict[str, float] = {}  # name -> end of the reopen window after a close

    def note(self, name: str, change: Change) -> None:
        now = self.clock.monotonic()
        if change is Change.WRITTEN:
            self._open[name] = now
            self._recheck.pop(name, None)
            run = self._runs.get(name)
            if run is None or (run.closed is not None and now - run.closed >= self.reopen_s):
                self._runs[name] = _Run(now)
            else:
                run.closed = None
            current = self._due.get(name)
            if current is None or current - now < self.settle_s:
                self._due[name] = now + self.settle_s  # postponed while writes go on
            return
        self._open.pop(name, None)
        if change is Change.CLOSED and name in self._runs:
            self._runs[name].closed = now
            self._recheck[name] = now + self.reopen_s
        elif change is not Change.CLOSED:
            self._runs.pop(name, None)
            self._recheck.pop(name, None)
        self._due[name] = now + (RENAME_DELAY_S if change is Change.RENAMED else self.debounce_s)

    def is_writing(self, name: str) -> bool:
        """Whether ``name`` is still being written, as far as the events tell."""
        now = self.clock.monotonic()
        since = self._open.get(name)
        if since is not None:
            if now - since < self.write_grace_s:
                return True
            del self._open[name]
        run = self._runs.get(name)
        if run is None or run.closed is None:
            return False
        return now - run.closed < self.reopen_s and now - run.started < self.write_grace_s

    def take_ready(self) -> set[str]:
        """Names whose report is due now (removed from the schedule)."""
        now = self.clock.monotonic()
        ready = {n for n, t in self._due.items() if t <= now}
        for n in ready:
            del self._due[n]
        lapsed = {n for n, t in self._recheck.items() if t <= now}
        for n in lapsed:  # no new write within the reopen window: the run is over
            del self._recheck[n]
            self._runs.pop(n, None)
        return ready | lapsed

    def next_due(self) -> float | None:
        """The clock time of the next report, or None if nothing is scheduled."""
        times = [*self._due.values(), *self._recheck.values()]
        return min(times) if times else None
