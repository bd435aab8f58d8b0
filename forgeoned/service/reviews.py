"""Plugin reviews in the daemon: the :class:`~forgeoned.core.review.ReviewBook` fed by the
audit trail (a first activation starts a plugin's review clock; a quarantine or a rollback
makes its review due now) and by ``forgeonectl review`` (``plugin.reviewed``, written first:
no record, no review). The book is saved (the state dir's ``reviews.json``) on each change,
except inside :meth:`Reviews.held`: the daemon's start holds it, so that 1,000 first
activations are one save, not 1,000 saves of a growing book (each a whole-file rewrite and
an fsync, which cost a 1,000-plugin start about 2.8 s of CPU).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.review import Incident, PluginReviews, Review, ReviewBook
from forgeoned.errors import BadRequestError, StateError

log = logging.getLogger("forgeoned")

DAY_S: Final = 86400.0
_ACTIVATED: Final = frozenset({EventName.PLUGIN_INSTALLED, EventName.PLUGIN_UPGRADED})
_INCIDENTS: Final = frozenset({EventName.PLUGIN_QUARANTINED, EventName.PLUGIN_ROLLED_BACK})


class Reviews:
    def __init__(
        self,
        book: ReviewBook,
        save: Callable[[ReviewBook], None],
        clock: Clock,
        interval_days: Callable[[], float],
    ) -> None:
        self.book = book
        self._save = save
        self._clock = clock
        self._interval_days = interval_days  # the config in force (a reload may change it)
        self._lock = threading.RLock()
        self.save_failures = 0
        self._held = 0  # inside held(): changes are saved on leaving it
        self._unsaved = False

    @property
    def interval_s(self) -> float:
        return self._interval_days() * DAY_S

    def observe(self, event: AuditEvent) -> None:
        """Told of every audit event once it is recorded."""
        name = event.plugin
        if name is None or (event.event not in _ACTIVATED and event.event not in _INCIDENTS):
            return
        with self._lock:
            if event.event in _ACTIVATED:
                if not self.book.activated(name, self._clock.wall()):
                    return
            else:
                label = event.event.label
                self.book.incident(
                    name, Incident(self._clock.wall(), label, event.version, event.reason)
                )
            if self._held:
                self._unsaved = True
            else:
                self._try_save()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Changes observed inside are saved once, on leaving (the start: its events are
        recorded by several writer threads, and the state is written after this)."""
        with self._lock:
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                if not self._held and self._unsaved:
                    self._unsaved = False
                    self._try_save()

    def _try_save(self) -> None:
        """Save after an event: a full or broken state disk must not turn the event's own
        path (a swap, a rollback) into a failure. The book stays in memory and is saved with
        the next change; the failure is counted for ``status`` and logged."""
        try:
            self._save(self.book)
        except StateError as exc:
            self.save_failures += 1
            log.warning("reviews not saved (kept in memory, saved with the next change): %s",
                        exc)  # fmt: skip

    def review(
        self, audit: AuditSink, name: str, version: str | None, sha256: str | None,
        note: str, actor: str | None,
    ) -> PluginReviews:  # fmt: skip
        """Record a review of ``name`` (audited first); its next review is due an interval on."""
        if not note.strip():
            raise BadRequestError("a review needs a note (--note TEXT)")
        with self._lock:
            now = self._clock.wall()
            audit.record(AuditEvent(
                EventName.PLUGIN_REVIEWED, plugin=name, version=version, sha256=sha256,
                actor=actor, message=note,
                details={"note": note, "next_due": now + self.interval_s},
            ))  # fmt: skip
            self.book.reviewed(name, Review(now, actor, version, note))
            self._save(self.book)
            self._unsaved = False
            return self.book.plugins[name]

    def due(self) -> dict[str, float]:
        """Each plugin's next review date (Unix time)."""
        with self._lock:
            return self.book.due(self.interval_s)

    def overdue(self) -> list[tuple[str, PluginReviews]]:
        with self._lock:
            return self.book.overdue(self.interval_s, self._clock.wall())
