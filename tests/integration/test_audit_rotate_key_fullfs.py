"""Rotating the checkpoint key fails closed on a full disk: AuditUnavailableError (the API's
503 audit_unavailable), the old key still in force and still signing, no pending key left,
and the log verifies; once space is back the same request works."""

from __future__ import annotations

from pathlib import Path

import pytest
from fullfs_kit import fill, tmpfs

from forgeoned.adapters.audit.key import pending_path, read_public
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.errors import AuditUnavailableError


def test_a_rotation_on_a_full_disk_changes_nothing(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "2m") as root:
        directory = root / "audit"
        log = AuditLog(directory, ManualClock())
        try:
            log.record(AuditEvent(EventName.PLUGIN_PAUSED, plugin="hello", actor="uid=0"))
            old = log.public_key
            filler = fill(root)
            with pytest.raises(AuditUnavailableError):
                log.rotate_key("uid=0(root)")
            assert log.public_key == old and log.root_key == old
            assert read_public(directory / "checkpoint.pub") == old
            assert not pending_path(directory / "checkpoint.key").exists()
            assert not (directory / "handovers.json").exists()
            filler.unlink()
            assert log.verify().ok
            answer = log.rotate_key("uid=0(root)")
            assert answer["old_key"] == old and log.public_key != old
            assert log.verify().ok
        finally:
            log.close()
