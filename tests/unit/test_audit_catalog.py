"""systemd/forgeoned.catalog documents exactly the MESSAGE_IDs forgeoned emits."""

from __future__ import annotations

import re
from pathlib import Path

from forgeoned.core.events import PLUGIN_LOG_MESSAGE_ID, EventName

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
