"""Audit export formats for ``forgeonectl audit export``: JSON (an array), CSV (flat columns)
and OCSF (NDJSON, see :mod:`forgeoned.core.ocsf`).

JSON keeps every entry exactly as stored, so an exported file can be re-hashed by anyone with
:func:`forgeoned.core.audit_chain.entry_hash`. CSV is for spreadsheets: one row per entry,
fixed columns, ``details`` as compact JSON in one cell, and cells that a spreadsheet would
take for a formula prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from forgeoned.core.ocsf import to_ocsf

CSV_COLUMNS: Final[tuple[str, ...]] = (
    "seq",
    "ts",
    "event",
    "plugin",
    "version",
    "sha256",
    "actor",
    "reason",
    "message",
    "details",
    "prev_hash",
    "hash",
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def export_json(entries: Iterable[Mapping[str, Any]]) -> str:
    """A JSON array of the entries (one per line for readable diffs), newline-terminated."""
    return "".join(json_lines(entries))


def json_lines(entries: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """:func:`export_json` piece by piece, for entries that do not fit in memory."""
    sep = "[\n"
    for entry in entries:
        yield sep + json.dumps(dict(entry), sort_keys=True, ensure_ascii=False)
        sep = ",\n"
    yield "[]\n" if sep == "[\n" else "\n]\n"


def export_ocsf(entries: Iterable[Mapping[str, Any]], product_version: str) -> Iterator[str]:
    """OCSF 1.8.0 events, one JSON object per line (NDJSON), in log order."""
    for entry in entries:
        yield json.dumps(to_ocsf(entry, product_version), sort_keys=True, ensure_ascii=False) + "\n"


def export_csv(entries: Iterable[Mapping[str, Any]]) -> str:
    """CSV with a header row of :data:`CSV_COLUMNS`."""
    return "".join(csv_lines(entries))


def csv_lines(entries: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """:func:`export_csv` row by row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in _rows(entries):
        writer.writerow(row)
        yield out.getvalue()
        out.seek(0)
        out.truncate()


def _rows(entries: Iterable[Mapping[str, Any]]) -> Iterator[list[str] | tuple[str, ...]]:
    yield CSV_COLUMNS
    for entry in entries:
        yield [_cell(entry.get(column)) for column in CSV_COLUMNS]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
