"""Attacker-influenced fields in audit entries: capped, escaped, the original's size and
digest kept; in the log file, the journal fields and the daemon's stderr lines."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

from forgeoned.adapters.audit.journald import audit_fields
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.journal_log import PLAIN_FORMAT, OneLine
from forgeoned.core.audit_bounds import FIELD_CHARS, MESSAGE_CHARS, bound, printable
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName

FORGED = "x\nINFO forgeoned.audit: #99 plugin.installed plugin=backdoor version=6.6\x1b[2K.wasm"


def _denied(key: str) -> AuditEvent:
    return AuditEvent(
        EventName.HOSTCALL_DENIED,
        plugin="p",
        version="1.0.0",
        reason="capability",
        message=f"plugin p was denied env_get({key})",
        details={"function": "env_get", "target": key},
    )


def test_a_huge_key_is_capped_with_its_length_and_digest() -> None:
    key = "K" * (406 * 1024)
    out = bound(_denied(key).fields())
    assert len(out["details"]["target"]) == FIELD_CHARS
    assert out["details"]["target"].endswith("…")
    assert len(out["message"]) == MESSAGE_CHARS
    original = key.encode()
    assert out["details"]["bounded"]["details.target"] == {
        "bytes": len(original),
        "sha256": hashlib.sha256(original).hexdigest(),
    }
    assert out["details"]["bounded"]["message"]["bytes"] == len(
        f"plugin p was denied env_get({key})"
    )
    assert len(json.dumps(out)) < 4096


def test_control_characters_are_written_as_escapes() -> None:
    out = bound(AuditEvent(EventName.PLUGIN_REJECTED, reason="malformed", message=FORGED,
                           details={"file": FORGED}).fields())  # fmt: skip
    for text in (out["message"], out["details"]["file"]):
        assert "\n" not in text and "\x1b" not in text
        assert "\\x0a" in text and "\\x1b[2K" in text
    assert set(out["details"]["bounded"]) == {"message", "details.file"}
    # C1 controls, line separators, bidi overrides, undecodable file-name bytes
    name = os.fsdecode(b"ev\xffil\xc2\x9b2J") + "\u2028\u202e"
    assert printable(name) == "ev\\xffil\\x9b2J\\u2028\\u202e"


def test_clean_fields_are_left_alone() -> None:
    fields = _denied("HOME").fields()
    assert bound(fields) == fields


def test_the_log_stores_what_the_daemon_used_to_refuse(tmp_path: Path) -> None:
    with AuditLog(tmp_path, ManualClock()) as log:
        entry = log.record(_denied("K" * (1200 * 1024)))  # was "audit entry too large"
        stored = entry
        forged = log.record(AuditEvent(EventName.PLUGIN_REJECTED, message=FORGED))
        assert log.verify().ok
    lines = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("audit-*.jsonl")))
    assert max(len(line) for line in lines.splitlines()) < 4096
    assert stored["details"]["bounded"]["details.target"]["bytes"] == 1200 * 1024
    fields = audit_fields(forged)
    assert all("\n" not in v and "\x1b" not in v for v in fields.values())
    assert fields["MESSAGE"].startswith("plugin.rejected: x\\x0aINFO forgeoned.audit: #99")


def test_stderr_lines_stay_one_line_each() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(OneLine())
    logger = logging.getLogger("forgeoned.test-one-line")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("rejected %s", FORGED)
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert not any(line.startswith("INFO forgeoned.audit") for line in lines)
    assert "\\x0aINFO forgeoned.audit: #99" in lines[0] and "\x1b" not in lines[0]
