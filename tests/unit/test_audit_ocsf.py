"""Every audit event type as an OCSF 1.8.0 event, validated against the compiled schema.

The schema is read in place from ``../shared/ocsf/1.8.0/schema.json`` (like the wasmsign2
vectors); the tests that need it skip, saying so, on a checkout without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audit_samples import SAMPLES, sealed
from ocsf_schema import MISSING_REASON, SCHEMA, class_by_uid, validate

from forgeoned import __version__
from forgeoned.core.events import EventName
from forgeoned.core.ocsf import to_ocsf
from forgeoned.core.ocsf_map import MAPPING, OcsfClass

needs_schema = pytest.mark.skipif(not SCHEMA.is_file(), reason=MISSING_REASON)


def test_every_event_name_has_a_mapping_and_a_sample() -> None:
    assert set(MAPPING) == set(EventName)
    assert {s.event for s in SAMPLES} == set(EventName)


@needs_schema
@pytest.mark.parametrize("entry", sealed(), ids=lambda e: f"{e['seq']}-{e['event']}")
def test_each_event_validates_against_its_ocsf_class(entry: dict[str, Any]) -> None:
    event = to_ocsf(entry, __version__)
    assert validate(event) == []
    assert event["class_uid"] == MAPPING[EventName.from_label(entry["event"])].cls.uid


@needs_schema
def test_the_mapping_table_names_classes_and_activities_of_the_schema() -> None:
    for cls in OcsfClass:
        found = class_by_uid(cls.uid)
        assert found["caption"] == cls.caption
        assert found["attributes"]["category_uid"]["enum"][str(cls.category_uid)]["caption"] == (
            cls.category_name
        )
    for name, row in MAPPING.items():
        if row.activity:
            enum = class_by_uid(row.cls.uid)["attributes"]["activity_id"]["enum"]
            assert str(row.activity) in enum, name
            if row.activity != 99:
                assert enum[str(row.activity)]["caption"] == row.name, name


@needs_schema
def test_the_validator_catches_what_it_should() -> None:
    good = to_ocsf(sealed()[2], __version__)
    assert validate(good) == []
    missing = {k: v for k, v in good.items() if k != "app"}
    assert any("'app' is missing" in e for e in validate(missing))
    assert any("not one of the enum" in e for e in validate({**good, "severity_id": 42}))
    assert any("needs an integer" in e for e in validate({**good, "time": "yesterday"}))
    assert any("not defined" in e for e in validate({**good, "forgeone_seq": 3}))
    bad_name = {**good, "activity_name": "Remove"}
    assert any("caption" in e for e in validate(bad_name))
    api = to_ocsf(sealed()[18], __version__)
    assert validate(api) == []
    for required in ("actor", "api", "src_endpoint"):
        less = {k: v for k, v in api.items() if k != required}
        assert any(f"{required!r} is missing" in e for e in validate(less)), required
    no_product = {**good, "metadata": {**good["metadata"], "product": {}}}
    assert any("at least one of" in e for e in validate(no_product))


def test_chain_fields_are_kept_where_the_base_schema_allows() -> None:
    entries = sealed()
    for entry in entries:
        event = to_ocsf(entry, "9.9.9")
        meta = event["metadata"]
        assert meta["uid"] == entry["hash"]
        assert meta["sequence"] == entry["seq"]
        assert {"name": "prev_hash", "value": entry["prev_hash"]} in meta["tags"]
        assert meta["product"] == {"name": "forgeoned", "vendor_name": "forgeoned",
                                   "version": "9.9.9"}  # fmt: skip
        assert meta["version"] == "1.8.0"
        assert meta["original_time"] == entry["ts"]
        if entry.get("details"):
            assert event["unmapped"]["details"] == entry["details"]


def test_activities_that_depend_on_the_entry() -> None:
    by_event: dict[str, list[dict[str, Any]]] = {}
    for entry in sealed():
        by_event.setdefault(entry["event"], []).append(to_ocsf(entry, __version__))
    assert by_event["control.action"][0]["activity_name"] == "Delete"
    assert by_event["control.requested"][0]["activity_name"] == "Create"
    assert by_event["control.denied"][0]["activity_name"] == "Update"
    assert by_event["control.denied"][0]["status_id"] == 2
    gaps = [(g["activity_id"], g["severity_id"]) for g in by_event["audit.gap"]]
    assert gaps == [(99, 5), (2, 5), (1, 5)]
    assert by_event["plugin.rejected"][0]["app"]["name"] == "bad.wasm"
    assert by_event["daemon.started"][0]["app"]["name"] == "forgeoned"


def _doc_rows() -> dict[str, list[str]]:
    doc = Path(__file__).resolve().parents[2] / "docs" / "audit-ocsf.md"
    rows: dict[str, list[str]] = {}
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_documented_table_is_the_mapping() -> None:
    rows = _doc_rows()
    assert set(rows) == {name.label for name in EventName}
    for name, row in MAPPING.items():
        cls, activity, severity, status = rows[name.label]
        assert cls == f"{row.cls.caption} ({row.cls.uid})", name
        if row.activity:
            assert activity == f"{row.activity} {row.name}", name
        assert severity.startswith(f"{int(row.severity)} {row.severity.name.title()}"), name
        finding = row.cls in (OcsfClass.DETECTION_FINDING, OcsfClass.COMPLIANCE_FINDING)
        expected = "1 New" if finding else f"{int(row.status)} {row.status.name.title()}"
        assert status.split(" ¹")[0].split(" ²")[0] == expected, name
