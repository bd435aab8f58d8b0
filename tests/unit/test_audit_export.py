"""JSON and CSV export of audit entries."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.audit_chain import entry_hash
from forgeoned.core.audit_export import export_csv, export_json
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName


def _entries(tmp_path: Path) -> list[dict[str, object]]:
    log = AuditLog(tmp_path, ManualClock())
    log.record(AuditEvent(EventName.PLUGIN_INSTALLED, plugin="a", version="1.0.0", actor="uid:0"))
    log.record(
        AuditEvent(
            EventName.CONTROL_DENIED,
            actor="uid:1000",
            reason="forbidden",
            message="=cmd|' /C calc'!A0",
            details={"action": "pause", "path": "/v1/plugins/a/pause"},
        )
    )
    out = list(log.entries())
    log.close()
    return out


def test_json_export_round_trips_and_rehashes(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    loaded = json.loads(export_json(entries))
    assert loaded == entries
    assert all(entry_hash(e) == e["hash"] for e in loaded)
    assert export_json([]) == "[]\n"


def test_csv_export_has_fixed_columns_and_defuses_formulas(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    rows = list(csv.DictReader(io.StringIO(export_csv(entries))))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in entries]
    denied = rows[2]
    assert denied["event"] == "control.denied"
    assert denied["actor"] == "uid:1000"
    assert denied["message"] == "'=cmd|' /C calc'!A0"
    assert json.loads(denied["details"]) == {"action": "pause", "path": "/v1/plugins/a/pause"}
    assert rows[1]["plugin"] == "a" and rows[1]["reason"] == ""
