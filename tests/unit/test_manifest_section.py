"""The forgeone.manifest section: embedding, reading, and manifests that must be refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from forgeoned.cli.devtools import package_plugin, sign_bytes, test_key
from forgeoned.core import wasm_sections as ws
from forgeoned.core.manifest_parse import parse_manifest_obj, parse_rfc3339
from forgeoned.core.manifest_section import SECTION_NAME, read_manifest, with_manifest
from forgeoned.errors import ManifestError, SignatureError

MODULE = ws.build_module([b"\x01\x04\x01\x60\x00\x00"])
GOOD: dict[str, Any] = {
    "name": "hello",
    "version": "1.2.0",
    "abi": 1,
    "capabilities": {"log": True, "env": ["TZ"], "kv": {"quota_bytes": 65536}},
    "limits": {"memory_bytes": 16777216, "fuel_per_call": 100000000},
    "not_after": "2030-01-01T00:00:00Z",
}


def test_embed_and_read_back() -> None:
    manifest = parse_manifest_obj(GOOD)
    data = with_manifest(MODULE, manifest)
    assert data.startswith(MODULE)
    assert read_manifest(data, ws.parse_sections(data)) == manifest


def test_repackaging_replaces_the_manifest() -> None:
    once = with_manifest(MODULE, parse_manifest_obj(GOOD))
    twice = with_manifest(once, parse_manifest_obj({**GOOD, "version": "1.3.0"}))
    sections = ws.parse_sections(twice)
    assert len(ws.custom_sections(sections, SECTION_NAME)) == 1
    assert read_manifest(twice, sections).version == "1.3.0"


def test_packaging_a_signed_module_is_refused() -> None:
    signed = sign_bytes(package_plugin(MODULE, GOOD), test_key(1))
    with pytest.raises(SignatureError, match="already signed; package the unsigned module"):
        with_manifest(signed, parse_manifest_obj(GOOD))


def test_missing_manifest() -> None:
    with pytest.raises(ManifestError, match=r"no 'forgeone\.manifest' custom section"):
        read_manifest(MODULE, ws.parse_sections(MODULE))


def test_manifest_that_is_not_json() -> None:
    data = MODULE + ws.encode_custom_section(SECTION_NAME, b"\xff{")
    with pytest.raises(ManifestError, match="not valid UTF-8 JSON"):
        read_manifest(data, ws.parse_sections(data))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Hello"}, "'name'"),
        ({"name": "../etc"}, "'name'"),
        ({"name": "a" * 65}, "'name'"),
        ({"version": "1.2"}, "'version'"),
        ({"version": "v1.2.0"}, "'version'"),
        ({"abi": 2}, "'abi'"),
        ({"capabilities": {"network": True}}, "'capabilities.network': unknown field"),
        ({"capabilities": {"env": ["BAD KEY"]}}, "'capabilities.env'"),
        ({"limits": {"memory_bytes": 2**40}}, "'limits.memory_bytes'"),
        ({"limits": {"fuel_per_call": -1}}, "'limits.fuel_per_call'"),
        ({"limits": {"instances": 10_000}}, "'limits.instances'"),
        ({"limits": {"call_timeout_ms": 0}}, "'limits.call_timeout_ms'"),
        ({"tick_interval_ms": 10**12}, "'tick_interval_ms'"),
        ({"not_after": "tomorrow"}, "'not_after'"),
        ({"not_after": "2030-01-01T00:00:00"}, "no UTC offset"),
        ({"surprise": 1}, "'surprise': unknown field"),
    ],
)
def test_bad_manifest_names_the_field_and_nothing_is_packaged(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ManifestError, match="manifest field") as info:
        package_plugin(MODULE, {**GOOD, **change})
    assert field in str(info.value)
    # The same manifest smuggled into a signed module is refused when it is read, too.
    raw = json.dumps({**GOOD, **change}).encode()
    data = MODULE + ws.encode_custom_section(SECTION_NAME, raw)
    with pytest.raises(ManifestError) as again:
        read_manifest(data, ws.parse_sections(data))
    assert field in str(again.value)


def test_rfc3339_parsing() -> None:
    assert parse_rfc3339("1970-01-01T00:00:10Z") == 10.0
    assert parse_rfc3339("1970-01-01T01:00:10+01:00") == 10.0
