"""What the audit log could not write while writes failed, and the ``audit.gap`` that says so.

A failed write (``ENOSPC``, ``EIO``…) opens an *outage*; every record refused meanwhile is
counted by event name, in one of two ways:

- **refused**: the record was the precondition of an action (made inside
  :meth:`Outage.precondition`, see :mod:`forgeoned.daemon.facade`): the action did not happen;
- **lost**: the record described something that happened anyway (a plugin fault, a denied host
  call, the ``control.action`` of a refused request).

The first write that succeeds afterwards is preceded by one ``audit.gap`` entry carrying the
period and those counts, so the chain shows where it has a hole and what fell into it. Its
``details.kind`` is ``write_failed`` (the field is general: other kinds of hole, such as a
truncated log, can use the same event). Counting is thread-safe; closing the gap is
serialised by the caller (:class:`~forgeoned.adapters.audit.trail.AuditTrail`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from forgeoned.core import audit_chain
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.errors import AuditUnavailableError

log = logging.getLogger("forgeoned")

GAP_KIND_WRITE_FAILED: Final = "write_failed"
_SELF: Final = "forgeoned"


@dataclass(slots=True)
class _Period:
    since: float  # wall time of the first failed write
    error: str = ""  # the latest error
    failures: int = 0  # failed writes, including attempts to write the gap itself
    lost: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def merge(self, later: _Period) -> None:
        self.error = later.error or self.error
        self.failures += later.failures
        self.lost.update(later.lost)
        self.refused.update(later.refused)


@dataclass(slots=True)
class Precondition:
    """Set by the trail once the record that an action waits for was tried."""

    written: bool = False


@dataclass(frozen=True, slots=True)
class OutageView:
    """A snapshot for metrics and the daemon's status line."""

    ok: bool
    since: float | None
    error: str
    lost_total: int
    refused_total: int


class Outage:
    """Thread-safe bookkeeping of one audit log's failed writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: _Period | None = None
        self._closing: _Period | None = None  # written as audit.gap, not yet durable
        self._armed = threading.local()
        self.lost_total = 0
        self.refused_total = 0

    # --- classifying records ---------------------------------------------------------------

    @contextmanager
    def precondition(self) -> Iterator[Precondition]:
        """The first record made on this thread inside is the precondition of an action: if
        it cannot be written the action must not happen, and it is counted as refused. The
        mark says whether it was written (see :meth:`guard`)."""
        mark = self._armed.mark = Precondition()
        try:
            yield mark
        finally:
            self._armed.mark = None

    def take_precondition(self) -> Precondition | None:
        """The mark if the record starting now is a precondition (consumes it)."""
        mark: Precondition | None = getattr(self._armed, "mark", None)
        self._armed.mark = None
        return mark

    def guard(self, action: Callable[[], None], what: str) -> None:
        """Run ``action``, whose first audit record is its precondition (fail closed).

        If that record cannot be made durable, ``action`` raises AuditUnavailableError before
        changing anything, and so does this. A record that fails *after* it (the disk filled
        during the action) cannot take back what was done: it is counted as lost in the next
        ``audit.gap`` and logged, and the action stands.
        """
        with self.precondition() as mark:
            try:
                action()
            except AuditUnavailableError as exc:
                if not mark.written:
                    raise
                log.warning("%s: done, but a record made after it was lost: %s", what, exc)

    def failed(self, label: str | None, error: str, now: float, refused: bool = False) -> bool:
        """Count a failed write (``label`` None: no event was lost, e.g. a retry of the gap).
        Returns True when this failure opened the outage."""
        with self._lock:
            opened = self._open is None and self._closing is None
            period = self._open
            if period is None:
                period = self._open = _Period(since=now)
            period.failures += 1
            period.error = error
            if label is not None:
                if refused:
                    period.refused[label] += 1
                    self.refused_total += 1
                else:
                    period.lost[label] += 1
                    self.lost_total += 1
            return opened

    # --- closing the gap (the caller serialises these) --------------------------------------

    @property
    def ok(self) -> bool:
        """True when no outage is open (a plain read, for fast paths and metrics)."""
        return self._open is None and self._closing is None

    @property
    def due(self) -> bool:
        """True when an ``audit.gap`` entry must precede the next record."""
        return self._open is not None

    def gap_event(self, now: float) -> AuditEvent:
        """The ``audit.gap`` entry for the open outage, which is marked as being closed."""
        with self._lock:
            period = self._open
            assert period is not None, "no outage to close"
            self._open, self._closing = None, period
        lost, refused = sum(period.lost.values()), sum(period.refused.values())
        since, until = audit_chain.rfc3339(period.since), audit_chain.rfc3339(now)
        return AuditEvent(
            EventName.AUDIT_GAP,
            actor=_SELF,
            reason=GAP_KIND_WRITE_FAILED,
            message=f"the audit log could not be written from {since} to {until} "
            f"({period.error}): {lost} records lost, {refused} actions refused",
            details={
                "kind": GAP_KIND_WRITE_FAILED,
                "since": since,
                "until": until,
                "failed_writes": period.failures,
                "lost": dict(sorted(period.lost.items())),
                "refused": dict(sorted(period.refused.items())),
                "error": period.error,
            },
        )

    def finish(self) -> None:
        """The ``audit.gap`` entry is durable: the outage is over."""
        with self._lock:
            self._closing = None

    def reopen(self) -> None:
        """The ``audit.gap`` entry could not be written: its period goes on."""
        with self._lock:
            closing, self._closing = self._closing, None
            if closing is not None:
                if self._open is not None:
                    closing.merge(self._open)
                self._open = closing

    def view(self) -> OutageView:
        with self._lock:
            period = self._open or self._closing
            return OutageView(
                ok=period is None,
                since=period.since if period is not None else None,
                error=period.error if period is not None else "",
                lost_total=self.lost_total,
                refused_total=self.refused_total,
            )
