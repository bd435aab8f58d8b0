"""The Wasm OCI layout (references, the pushed manifest, the pulled manifest's checks) and
``[[sources]]`` parsing: every bad input is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgeoned.core.oci import (
    ATTESTATION_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPE,
    check_manifest,
    parse_reference,
    plan_push,
    sha256_digest,
)
from forgeoned.core.sources import SourceRecord, SyncOutcome, SyncResult, parse_sources
from forgeoned.daemon.config_file import parse_config
from forgeoned.errors import ConfigError, SourceError

PIN = "sha256:" + "ab" * 32


def test_references_by_tag_and_by_digest() -> None:
    ref = parse_reference("oci://127.0.0.1:5000/plugins/hello:1.2")
    assert (ref.host, ref.repository, ref.tag, ref.pinned) == ("127.0.0.1:5000", "plugins/hello",
                                                               "1.2", False)  # fmt: skip
    pinned = parse_reference(f"oci://localhost/hello@{PIN}")
    assert pinned.pinned and pinned.selector == PIN and str(pinned).endswith(PIN)
    assert parse_reference("oci://localhost/hello").selector == "latest"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("https://localhost/hello:1", "starts with oci://"),
        ("oci://localhost", "expected oci://HOST"),
        ("oci://localhost/Hello:1", "bad repository"),
        ("oci://localhost/hello:-x", "bad tag"),
        ("oci://localhost/hello@sha256:12", "64 lowercase hex"),
    ],
)
def test_a_bad_reference_is_one_line_naming_the_problem(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        parse_reference(text)
    assert "\n" not in str(err.value)


def test_the_pushed_manifest_is_the_wasm_layout_and_passes_its_own_checks() -> None:
    module = b"\0asm\1\0\0\0"
    plan = plan_push(module, "hello", "1.0.0", ["k2", "k1"], "2026-12-05T00:00:00Z")
    obj = json.loads(plan.manifest)
    assert obj["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert [layer["mediaType"] for layer in obj["layers"]] == [LAYER_MEDIA_TYPE]
    assert obj["annotations"]["io.forgeone.plugin.signer-key-ids"] == "k1,k2"
    artifact = check_manifest(plan.manifest, plan.digest)
    assert (
        artifact.layer.digest == sha256_digest(module) and artifact.manifest_digest == plan.digest
    )


def _manifest(**change: object) -> bytes:
    plan = plan_push(b"\0asm\1\0\0\0", "hello", "1.0.0", [], "2026-12-05T00:00:00Z")
    obj = json.loads(plan.manifest)
    obj.update(change)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "bad_manifest"),
        (_manifest(schemaVersion=1), "bad_manifest"),
        (
            _manifest(mediaType="application/vnd.docker.distribution.manifest.v2+json"),
            "wrong_media_type",
        ),
        (_manifest(layers=[]), "layer_count"),
        (_manifest(config={"mediaType": "x", "digest": PIN, "size": 1}), "wrong_media_type"),
        (
            _manifest(layers=[{"mediaType": LAYER_MEDIA_TYPE, "digest": "md5:1", "size": 1}]),
            "bad_manifest",
        ),
        (
            _manifest(layers=[{"mediaType": LAYER_MEDIA_TYPE, "digest": PIN, "size": -1}]),
            "bad_manifest",
        ),
    ],
)
def test_a_manifest_that_is_not_the_wasm_layout_is_refused_with_its_reason(
    raw: bytes, reason: str
) -> None:
    with pytest.raises(SourceError) as err:
        check_manifest(raw, None)
    assert err.value.code == reason


WASM = {"mediaType": LAYER_MEDIA_TYPE, "digest": PIN, "size": 8}
ATT = {"mediaType": ATTESTATION_MEDIA_TYPE, "digest": "sha256:" + "cd" * 32, "size": 9}


def test_a_pushed_attestation_is_the_second_layer_and_the_pull_finds_it() -> None:
    module, envelope = b"\0asm\1\0\0\0", b'{"x": 1}'
    plan = plan_push(module, "hello", "1.0.0", [], "2026-12-05T00:00:00Z", envelope)
    obj = json.loads(plan.manifest)
    assert [la["mediaType"] for la in obj["layers"]] == [LAYER_MEDIA_TYPE, ATTESTATION_MEDIA_TYPE]
    assert json.loads(plan.config)["layerDigests"] == [sha256_digest(module),
                                                      sha256_digest(envelope)]  # fmt: skip
    artifact = check_manifest(plan.manifest, plan.digest)
    assert artifact.layer.digest == sha256_digest(module)
    assert artifact.attestation is not None
    assert artifact.attestation.digest == sha256_digest(envelope)
    # either order is the same artifact
    assert check_manifest(_manifest(layers=[ATT, WASM]), None).attestation is not None


@pytest.mark.parametrize(
    ("layers", "reason"),
    [
        ([WASM, ATT, ATT], "layer_count"),  # two attestations: which one?
        ([WASM, WASM], "layer_count"),
        ([ATT], "layer_count"),  # no module
        ([ATT, ATT], "layer_count"),
        ([WASM, {**ATT, "mediaType": "application/json"}], "wrong_media_type"),
        ([WASM, ATT, {**ATT, "mediaType": "text/plain"}], "layer_count"),
    ],
)
def test_anything_but_a_module_and_at_most_one_attestation_is_refused(
    layers: list[dict[str, object]], reason: str
) -> None:
    with pytest.raises(SourceError) as err:
        check_manifest(_manifest(layers=layers), None)
    assert err.value.code == reason


def test_a_pinned_manifest_must_hash_to_its_pin() -> None:
    with pytest.raises(SourceError) as err:
        check_manifest(_manifest(), PIN)
    assert err.value.code == "digest_mismatch"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"name": "a", "reference": "oci://h/r:1", "colour": 1}, r"sources\[0\].colour: unknown"),
        ({"name": "A", "reference": "oci://h/r:1"}, r"sources\[0\].name"),
        ({"name": "a"}, r"sources\[0\].reference"),
        ({"name": "a", "reference": "oci://h/r:1", "interval_s": 0}, "interval_s: a number"),
        ({"name": "a", "reference": "oci://h/r:1", "credentials": "../x"}, "credentials"),
        ({"name": "a", "reference": "oci://h/r:1", "plain_http": "yes"}, "plain_http"),
    ],
)
def test_a_bad_source_is_one_line_naming_its_key(raw: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        parse_sources([raw])
    assert "\n" not in str(err.value)


def test_two_sources_with_one_name_and_the_file_named_in_config_errors() -> None:
    one = {"name": "a", "reference": "oci://h/r:1"}
    with pytest.raises(ConfigError, match="used twice"):
        parse_sources([one, one])
    with pytest.raises(ConfigError, match=r"^/etc/forgeoned/x.toml: sources\[0\]"):
        parse_config({"sources": [{"name": "a"}]}, Path("/etc/forgeoned/x.toml"))


def test_a_record_counts_failures_by_reason_and_when_the_run_of_failures_began() -> None:
    (config,) = parse_sources([{"name": "a", "reference": "oci://h/r:1"}])
    record = SourceRecord(config)
    record.note(SyncResult(SyncOutcome.FAILED, 10.0, reason="registry_timeout"))
    record.note(SyncResult(SyncOutcome.FAILED, 20.0, reason="auth_refused"))
    assert record.failing_since == 10.0 and record.last_success is None
    record.note(SyncResult(SyncOutcome.UNCHANGED, 30.0))
    assert record.failing_since is None and record.last_success == 30.0
    assert dict(record.failures) == {"registry_timeout": 1, "auth_refused": 1}
    assert record.to_json()["file"] == "oci-a.wasm"
