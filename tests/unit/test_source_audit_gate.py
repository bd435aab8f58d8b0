"""The follower fails closed on audit (issue 12): ``source.synced`` is the precondition of a
delivery. While the gate says the log cannot be written nothing is fetched; if the record
is refused at the last moment (the disk filled between the check and the write) the
delivery does not land; a forced sync is refused with ``AuditUnavailableError``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.oci import parse_reference
from forgeoned.core.sources import SourceConfig, SyncOutcome, SyncResult
from forgeoned.errors import AuditUnavailableError
from forgeoned.service.sources import HELD_MESSAGE, SourceFollower

CONFIG = SourceConfig("hello", parse_reference("oci://reg.example:5000/plugins/hello:stable"))


@dataclass
class Gate:
    ok: bool = True
    marks: int = 0

    @contextlib.contextmanager
    def precondition(self) -> Iterator[object]:
        self.marks += 1
        yield object()

    def guard(self, action: Callable[[], None], what: str) -> None:
        action()


@dataclass
class Audit:
    full: bool = False
    events: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        if self.full:
            raise AuditUnavailableError("cannot write the audit log: No space left on device")
        self.events.append(event)


@dataclass
class Fetcher:
    """Delivers hello 2.0.0: ``landed`` once the rename would have happened."""

    config: SourceConfig = CONFIG
    calls: int = 0
    landed: bool = False

    def sync(self, approve: Callable[[SyncResult], None] | None = None) -> SyncResult:
        self.calls += 1
        result = SyncResult(SyncOutcome.SYNCED, 1.0, "hello", "2.0.0", "ab" * 32, "sha256:x")
        if approve is not None:
            approve(result)
        self.landed = True
        return result

    def close(self) -> None:
        pass


def _follower(gate: Gate, audit: Audit) -> tuple[SourceFollower, Fetcher]:
    fetcher = Fetcher()
    return SourceFollower([fetcher], audit, ManualClock(), gate), fetcher


def test_nothing_is_fetched_while_the_gate_is_closed_and_pull_is_refused() -> None:
    gate, audit = Gate(ok=False), Audit(full=True)
    follower, fetcher = _follower(gate, audit)
    assert follower.sync("hello").outcome is SyncOutcome.HELD  # the poll
    with pytest.raises(AuditUnavailableError, match="source hello not synced"):
        follower.sync("hello", actor="ops")  # pull
    assert fetcher.calls == 0 and not fetcher.landed
    [view] = follower.views()
    assert view["outcome"] == "held" and view["message"] == HELD_MESSAGE
    assert view["failing_since"] is None and view["failures"] == {}


def test_a_refused_record_at_the_last_moment_stops_the_delivery() -> None:
    gate, audit = Gate(ok=True), Audit(full=True)
    follower, fetcher = _follower(gate, audit)
    assert follower.sync("hello").outcome is SyncOutcome.HELD
    assert fetcher.calls == 1 and not fetcher.landed  # approve raised before the rename
    assert gate.marks == 1  # the record was made as a precondition (counted as refused)


def test_the_delivery_is_recorded_before_it_lands_once_the_log_works() -> None:
    gate, audit = Gate(ok=True), Audit()
    follower, fetcher = _follower(gate, audit)
    result = follower.sync("hello", actor="ops")
    assert result.outcome is SyncOutcome.SYNCED and fetcher.landed
    [event] = audit.events
    assert event.event is EventName.SOURCE_SYNCED and event.version == "2.0.0"
    assert event.actor == "ops" and event.details["source"] == "hello"
