"""systemd/forgeoned.catalog documents exactly the MESSAGE_IDs forgeoned emits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forgeoned.adapters.audit.journald import audit_fields
from forgeoned.core.events import PLUGIN_LOG_MESSAGE_ID, AuditEvent, EventName

CATALOG = Path(__file__).resolve().parents[2] / "systemd" / "forgeoned.catalog"


def _entries() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in CATALOG.read_text().splitlines():
        header = re.fullmatch(r"-- ([0-9a-f]{32})", line)
        if header:
            assert header.group(1) not in entries, f"duplicate {header.group(1)}"
            current = entries[header.group(1)] = []
        elif current is not None:
            current.append(line)
    return entries


def test_catalog_ids_match_the_event_table_exactly() -> None:
    expected = {name.message_id for name in EventName} | {PLUGIN_LOG_MESSAGE_ID}
    assert set(_entries()) == expected


def test_every_entry_has_a_subject_and_an_explanation() -> None:
    for message_id, lines in _entries().items():
        assert lines[0].startswith("Subject: "), message_id
        assert "Defined-By: forgeoned" in lines
        body = [line for line in lines[lines.index("") + 1 :] if line.strip()]
        assert len(body) >= 1, message_id


def test_catalog_subject_names_the_event_it_documents() -> None:
    entries = _entries()
    quarantined = entries[EventName.PLUGIN_QUARANTINED.message_id][0]
    assert quarantined == "Subject: plugin @FORGEONE_PLUGIN@ quarantined"
    assert "rejected" in entries[EventName.PLUGIN_REJECTED.message_id][0]
    assert "log line" in entries[PLUGIN_LOG_MESSAGE_ID][0]


def _subject(event: AuditEvent) -> str:
    """The Subject journalctl -x shows for ``event``: placeholders filled from its fields."""
    template = _entries()[event.event.message_id][0].removeprefix("Subject: ")
    fields = audit_fields(event.fields() | {"seq": 7})
    return re.sub(r"@([A-Z0-9_]+)@", lambda m: fields.get(m.group(1), m.group(0)), template)


@pytest.mark.parametrize(
    ("event", "subject"),
    [
        (
            AuditEvent(EventName.PLUGIN_REJECTED, reason="unsigned", details={"file": "x.wasm"}),
            "artifact x.wasm rejected (unsigned)",
        ),
        (
            AuditEvent(
                EventName.PLUGIN_REJECTED,
                plugin="hello",
                version="1.0.0",
                reason="downgrade",
                details={"file": "hello.wasm"},
            ),
            "artifact hello.wasm (plugin hello 1.0.0) rejected (downgrade)",
        ),
        (
            AuditEvent(EventName.PLUGIN_REJECTED, plugin="hello", reason="revoked_key"),
            "artifact of plugin hello rejected (revoked_key)",
        ),
        (
            AuditEvent(EventName.DAEMON_RELOAD_FAILED, reason="config_invalid"),
            "forgeoned refused to reload its configuration (config_invalid)",
        ),
    ],
)
def test_subjects_of_rejections_and_failed_reloads_leave_no_placeholder(
    event: AuditEvent, subject: str
) -> None:
    assert _subject(event) == subject
