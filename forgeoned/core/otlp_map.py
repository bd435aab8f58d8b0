"""An audit entry as an OpenTelemetry log record: which fields go where (pure).

The record's ``body`` is the entry's message (or its event name), its time the entry's
``ts``, its severity from the event's journal priority, its ``event_name`` the audit event;
every other field is an attribute under ``forgeone.`` (``forgeone.seq``, ``forgeone.hash``,
``forgeone.prev_hash``, ``forgeone.message_id``, ``forgeone.plugin``…; ``details`` as one
JSON string, ``forgeone.details``), so a backend can check the chain links as for OCSF.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from forgeoned.core.audit_chain import parse_rfc3339
from forgeoned.core.events import EventName

# syslog priority -> (OTel SeverityNumber, SeverityText)
SEVERITY: Final = {
    7: (5, "DEBUG"),
    6: (9, "INFO"),
    5: (10, "INFO2"),
    4: (13, "WARN"),
    3: (17, "ERROR"),
    2: (21, "FATAL"),
}
_TOP: Final = ("plugin", "version", "sha256", "actor", "reason")


@dataclass(frozen=True, slots=True)
class OtlpRecord:
    time_ns: int
    severity_number: int
    severity_text: str
    body: str
    event_name: str
    attributes: dict[str, str | int]


def to_record(entry: Mapping[str, Any]) -> OtlpRecord:
    name = str(entry.get("event", ""))
    try:
        event: EventName | None = EventName.from_label(name)
    except ValueError:
        event = None
    number, text = SEVERITY.get(event.priority if event else 6, (9, "INFO"))
    try:
        time_ns = int(parse_rfc3339(str(entry.get("ts"))) * 1e9)
    except ValueError:
        time_ns = 0
    attributes: dict[str, str | int] = {
        "forgeone.seq": int(entry.get("seq", 0)),
        "forgeone.hash": str(entry.get("hash", "")),
        "forgeone.prev_hash": str(entry.get("prev_hash", "")),
        "forgeone.event": name,
    }
    if event is not None:
        attributes["forgeone.message_id"] = event.message_id
    for key in _TOP:
        if entry.get(key) is not None:
            attributes[f"forgeone.{key}"] = str(entry[key])
    if entry.get("details"):
        attributes["forgeone.details"] = json.dumps(entry["details"], sort_keys=True)
    body = str(entry.get("message") or name)
    return OtlpRecord(time_ns, number, text, body, name, attributes)
