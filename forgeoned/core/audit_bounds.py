"""Bounded, printable audit entries, whatever a plugin or a caller puts into them.

Many fields of an audit event come from outside: a key name a plugin asked for, a file name in
plugins.d, the target of a refused control request, an error text. Before an event is stored
(and so before it reaches the journal or stderr) :func:`bound` makes every string in it

- *printable*: control characters (C0, DEL, C1), the Unicode line and paragraph separators,
  the bidirectional overrides and lone surrogates (undecodable bytes of a file name) are
  written as ``\\xNN`` / ``\\uNNNN`` text, so nothing in an entry can end a log line, move a
  terminal's cursor or reorder what a reader sees;
- *short*: ``message`` to :data:`MESSAGE_CHARS` characters and any other string to
  :data:`FIELD_CHARS` (lists and mappings to :data:`ITEMS` items, :data:`DEPTH` levels).

Whatever was changed is recorded in ``details["bounded"]``: for each field (``message``,
``details.target``…) the length in bytes of the original (UTF-8, undecodable bytes as they
were) and its SHA-256, so the original can still be matched. Pure; no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

MESSAGE_CHARS: Final = 1024
FIELD_CHARS: Final = 256
ITEMS: Final = 64
DEPTH: Final = 4
BOUNDED_KEY: Final = "bounded"
# never produced from outside: event names, our digests and chain fields
_TRUSTED: Final = frozenset({"event", "sha256", "seq", "ts", "prev_hash", "hash"})
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_ELLIPSIS: Final = "…"


def bound(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` (an event's stored form) with every string printable and short."""
    changes: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _TRUSTED:
            out[key] = value
        elif key == "message":
            out[key] = _text(value, MESSAGE_CHARS, key, changes)
        else:
            out[key] = _value(value, key, 1, changes)
    if changes:
        details = out.get("details")
        out["details"] = {**(details if isinstance(details, dict) else {}), BOUNDED_KEY: changes}
    return out


def printable(text: str) -> str:
    """``text`` with the characters :func:`bound` escapes written as escapes (for log lines)."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def _value(value: Any, where: str, depth: int, changes: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, str):
        return _text(value, FIELD_CHARS, where, changes)
    if isinstance(value, Mapping):
        if depth > DEPTH:
            return _text(repr(value), FIELD_CHARS, where, changes)
        items = list(value.items())
        out = {
            _text(str(k), FIELD_CHARS, f"{where}.<key>", changes): _value(
                v, f"{where}.{str(k)[:FIELD_CHARS]}", depth + 1, changes
            )
            for k, v in items[:ITEMS]
        }
        if len(items) > ITEMS:
            changes[where] = {"items": len(items)}
        return out
    if isinstance(value, list | tuple):
        if depth > DEPTH:
            return _text(repr(value), FIELD_CHARS, where, changes)
        kept = [_value(v, f"{where}[]", depth + 1, changes) for v in value[:ITEMS]]
        if len(value) > ITEMS:
            changes[where] = {"items": len(value)}
        return kept
    return value


def _text(value: Any, limit: int, where: str, changes: dict[str, dict[str, Any]]) -> Any:
    if not isinstance(value, str):
        return value
    if len(value) <= limit and not _UNSAFE.search(value):
        return value
    safe = printable(value[: limit * 4])  # escapes are at most 6 characters for one
    if len(safe) > limit:
        safe = safe[: limit - 1] + _ELLIPSIS
    raw = (
        value.encode("utf-8", "surrogateescape")
        if _decodable(value)
        else value.encode("utf-8", "backslashreplace")
    )
    changes.setdefault(where, {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
    return safe


def _decodable(value: str) -> bool:
    """True unless ``value`` has surrogates other than surrogateescape's U+DC80…U+DCFF."""
    return not re.search("[\ud800-\udc7f\udd00-\udfff]", value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
