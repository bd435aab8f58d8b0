"""Accepting an audit gap is an action like any other: it fails closed on the audit log.

Its first record (``control.requested``, action ``audit_accept_gap``) is written before the
anchor moves; when the disk refuses it, the answer is ``audit_unavailable`` and the gap stays
open (verification still fails), then the same request works once the log can be written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from forgeoned.adapters.audit.anchor import AnchorKeeper
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.files.state_store import StateStore
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import AuditUnavailableError, ConflictError


class FullableLog:
    """The real log, whose writes can be refused as a full disk would."""

    def __init__(self, log: AuditLog) -> None:
        self.inner = log
        self.full = False

    @property
    def clock(self) -> ManualClock:
        return self.inner.clock  # type: ignore[return-value]

    def record(self, event: AuditEvent) -> dict[str, Any]:
        if self.full:
            raise AuditUnavailableError("audit log write failed: No space left on device")
        return self.inner.record(event)

    def take_internal(self) -> list[dict[str, Any]]:
        return self.inner.take_internal()

    def close(self) -> None:
        self.inner.close()


def _keeper(root: Path, clock: ManualClock) -> tuple[AnchorKeeper, AuditLog, FullableLog]:
    log = AuditLog(root / "audit", clock, key_path=root / "checkpoint.key")
    fullable = FullableLog(log)
    trail = AuditTrail(fullable, None, DaemonStats(), retry_s=3600.0)
    keeper = AnchorKeeper(StateStore(root), log, trail, trail.outage)
    keeper.start()
    return keeper, log, fullable


def test_accepting_a_gap_writes_its_request_first_and_fails_closed(tmp_path: Path) -> None:
    clock = ManualClock()
    keeper, log, _ = _keeper(tmp_path, clock)
    for _ in range(3):
        log.record(AuditEvent(EventName.PLUGIN_PAUSED, plugin="hello", actor="uid=0(root)"))
    log.checkpoint()
    assert keeper.anchor is not None and keeper.anchor.seq >= 4
    log.close()
    shutil.rmtree(tmp_path / "audit")  # wiped while stopped

    keeper, log, fullable = _keeper(tmp_path, clock)
    try:
        assert keeper.anchor is not None and keeper.anchor.gap is not None
        assert not log.verify().ok
        before = log.head_seq

        fullable.full = True
        with pytest.raises(AuditUnavailableError):
            keeper.accept("uid=0(root)")
        assert keeper.anchor is not None and keeper.anchor.gap is not None  # nothing changed
        assert log.head_seq == before and not log.verify().ok

        fullable.full = False
        answer = keeper.accept("uid=0(root)")
        assert answer["accepted"]["kind"] in ("new_chain", "missing")
        assert keeper.anchor is not None and keeper.anchor.gap is None
        assert log.verify().ok
        requested = [e for e in log.entries() if e["event"] == "control.requested"]
        assert [e["details"]["action"] for e in requested] == ["audit_accept_gap"]
        with pytest.raises(ConflictError):
            keeper.accept("uid=0(root)")  # nothing left to accept
    finally:
        log.close()
