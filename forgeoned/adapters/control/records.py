"""What the control server writes to the audit log besides each action: throttled refusals and
summaries of plugin calls.

Refusals are throttled per caller like denied host calls (:mod:`forgeoned.core.denial_throttle`):
each caller's first ``limit`` refusals per window are audited one by one, the rest counted and
audited as one ``control.denied`` summary (``details.suppressed``) once the window is over. Every
refusal is still answered 403 and counted in ``forgeone_control_requests_total``, so a caller
who may reach the socket but not use it cannot grow the audit log by more than ``limit + 1``
entries a window.

``invoke`` calls are audited as ``plugin.calls`` summaries (:mod:`forgeoned.core.call_ledger`):
counted per caller, plugin, function and outcome, one entry per interval, no write per call.
Each call is also offered, as a live ``plugin.call`` record, to the audit followers that asked
for calls (:mod:`forgeoned.core.call_feed`); with none asking, that is one attribute read.
Counting never blocks, so it may happen on the event-loop thread (an inline invoke); the
summaries it finds due are held and written by :meth:`ControlRecords.flush`, which the server
runs in its control lane after any deadline sweep that finds something due (so a summary is
written within a sweep of its window's end, whether or not a request comes), never on the
path of a request.
"""

from __future__ import annotations

import collections
import logging

from forgeoned.core.audit_chain import rfc3339
from forgeoned.core.call_feed import CallFeed
from forgeoned.core.call_ledger import CallLedger, CallSummary
from forgeoned.core.denial_throttle import DenialSummary, DenialThrottle
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.policy import Caller
from forgeoned.core.ports import AuditSink, Clock

log = logging.getLogger(__name__)


class ControlRecords:
    """Thread-safe. ``record``, ``refused``, ``flush`` and ``close`` write (worker threads);
    ``called`` and ``due`` never block."""

    def __init__(
        self,
        audit: AuditSink,
        clock: Clock,
        throttle: DenialThrottle | None = None,
        calls: CallLedger | None = None,
        feed: CallFeed | None = None,
    ) -> None:
        self.audit = audit
        self.clock = clock
        self.throttle = throttle if throttle is not None else DenialThrottle()
        self.calls = calls if calls is not None else CallLedger()
        self.feed = feed if feed is not None else CallFeed()
        self._wall_offset = clock.wall() - clock.monotonic()
        self._held: collections.deque[CallSummary] = collections.deque()

    def record(self, event: AuditEvent) -> None:
        try:
            self.audit.record(event)
        except Exception:  # an audit failure must not kill the request's thread
            log.exception("could not record %s", event.event.label)

    def refused(self, actor: str, event: AuditEvent) -> None:
        """A refused request of ``actor``: ``event`` is written if within its allowance."""
        audit, due = self.throttle.deny(actor, self.clock.monotonic())
        for summary in due:
            self._record_refusals(summary)
        if audit:
            self.record(event)

    def called(
        self,
        caller: Caller,
        plugin: str,
        outcome: str,
        started: float,
        function: str = "handle",
        fuel: int = 0,
        now: float | None = None,
    ) -> None:
        """One invoke of ``plugin``'s ``function`` that began at monotonic ``started``, ended
        at ``now`` (default: now) and used ``fuel``.

        The hot path of every invoke: its wall-clock time is the monotonic one plus an offset
        taken at each flush (one clock read fewer per call), the key a plain tuple."""
        if now is None:
            now = self.clock.monotonic()
        actor = caller.actor
        duration = now - started
        wall = now + self._wall_offset
        due = self.calls.add((actor, plugin, function, outcome), duration, started, wall, fuel)
        if due:
            self._held.extend(due)
        if self.feed.subscribers:
            self.feed.publish(call_record(caller, plugin, function, outcome, duration, fuel, wall))

    def due(self) -> bool:
        """Whether :meth:`flush` has something to write (cheap, never blocks)."""
        now = self.clock.monotonic()
        return bool(self._held) or self.calls.ended(now) or self.throttle.ended(now)

    def flush(self) -> None:
        """Write the summaries that are due."""
        clock = self.clock
        self._wall_offset = clock.wall() - clock.monotonic()  # the wall clock may be stepped
        while True:
            try:
                calls = self._held.popleft()
            except IndexError:
                break
            self._record_calls(calls)
        now = self.clock.monotonic()
        for summary in self.throttle.due(now):
            self._record_refusals(summary)
        for calls in self.calls.due(now):
            self._record_calls(calls)

    def close(self) -> None:
        """Write everything counted and not summarised yet (the server is closing)."""
        self.flush()
        for summary in self.throttle.drain():
            self._record_refusals(summary)
        for calls in self.calls.drain():
            self._record_calls(calls)

    def _record_calls(self, calls: CallSummary) -> None:
        key = calls.key
        self.record(
            AuditEvent(
                EventName.PLUGIN_CALLS,
                plugin=key.plugin,
                actor=key.actor,
                reason=key.outcome,
                message=f"{key.actor} called {key.plugin} {key.function} {calls.count} times "
                f"({key.outcome})",
                details={
                    "function": key.function,
                    "count": calls.count,
                    "total_ms": round(calls.total_s * 1000, 3),
                    "max_ms": round(calls.max_s * 1000, 3),
                    "fuel": calls.fuel,
                    "max_fuel": calls.max_fuel,
                    "first": rfc3339(calls.first),
                    "last": rfc3339(calls.last),
                    "interval_s": calls.interval_s,
                },
            )
        )

    def _record_refusals(self, summary: DenialSummary) -> None:
        actor = summary.function  # the throttle's key: the caller
        self.record(
            AuditEvent(
                EventName.CONTROL_DENIED,
                actor=actor,
                reason="throttled",
                message=f"{actor} was denied {summary.suppressed} more control requests within "
                f"{summary.window_s:g} s (counted, not audited one by one)",
                details={"suppressed": summary.suppressed, "window_s": summary.window_s},
            )
        )


def call_record(
    caller: Caller,
    plugin: str,
    function: str,
    outcome: str,
    duration_s: float,
    fuel: int,
    wall: float,
) -> dict[str, object]:
    """One call as a live ``plugin.call`` record: shaped like an audit entry (``event``,
    ``ts``, ``plugin``, ``actor``, ``reason`` the outcome, ``details``) without the chain
    fields, which it has not."""
    return {
        "event": "plugin.call",
        "ts": rfc3339(wall),
        "plugin": plugin,
        "actor": caller.actor,
        "reason": outcome,
        "details": {
            "function": function,
            "uid": caller.uid,
            "duration_ms": round(duration_s * 1000, 3),
            "fuel": fuel,
        },
    }
