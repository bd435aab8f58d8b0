"""The verification pipeline against every bad input of issue 3.

Each rejection test checks the one-line reason and its stable code, and that nothing reached
the (fake) loader: ``Loader.accept`` only records what ``verify_artifact`` returned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from abi_wat import lifecycle_exports

from forgeoned.cli.devtools import make_signed_plugin, package_plugin, sign_bytes, test_key
from forgeoned.cli.devtools import trust_policy_for as policy
from forgeoned.core import signature as sig
from forgeoned.core import wasm_sections as ws
from forgeoned.core.artifact import VerifiedArtifact, verify_artifact
from forgeoned.core.manifest_section import SECTION_NAME as MANIFEST_SECTION
from forgeoned.core.trust import Mode, TrustPolicy
from forgeoned.errors import (
    ArtifactError,
    ArtifactTooLargeError,
    MalformedModuleError,
    ManifestError,
    SignatureError,
    SignatureReason,
)

WAT = f"""(module
  (memory (export "memory") 1)
  {lifecycle_exports({"unload": "i32.const 7"})})"""
MANIFEST: dict[str, Any] = {"name": "hello", "version": "1.2.0", "abi": 1}
NOW = 1_800_000_000.0  # 2027-01-15
OPS, DEV, EVE = test_key(1), test_key(2), test_key(3)


@dataclass
class Loader:
    """Stands in for the daemon: keeps what verification let through."""

    trust: TrustPolicy
    mode: Mode = Mode.PRODUCTION
    loaded: list[VerifiedArtifact] = field(default_factory=list)

    def accept(self, data: bytes, detached: bytes | None = None) -> VerifiedArtifact:
        verified = verify_artifact(
            data, detached=detached, trust=self.trust, mode=self.mode, now=NOW
        )
        self.loaded.append(verified)
        return verified


def reject(
    loader: Loader,
    data: bytes,
    error: type[ArtifactError],
    code: str,
    text: str,
    detached: bytes | None = None,
) -> None:
    with pytest.raises(error) as info:
        loader.accept(data, detached)
    assert info.value.code == code
    assert text in str(info.value)
    assert "\n" not in str(info.value)
    assert loader.loaded == []


def signed(manifest: dict[str, Any] | None = None, *keys: Any) -> bytes:
    data = make_signed_plugin(WAT, manifest or MANIFEST, keys[0] if keys else OPS)
    for key in keys[1:]:
        data = sign_bytes(data, key)
    return data


def test_trusted_module_is_accepted_with_its_exact_bytes() -> None:
    loader = Loader(policy(OPS))
    data = signed()
    verified = loader.accept(data)
    assert verified.module is data  # read once: the verified object itself is compiled
    assert verified.manifest.name == "hello" and verified.manifest.version == "1.2.0"
    assert verified.signers == ("key0",)
    assert verified.signed and verified.dev_reason is None
    assert verified.sha256 == hashlib.sha256(data).hexdigest()


def test_unsigned_is_rejected_in_production() -> None:
    reject(
        Loader(policy(OPS)), package_plugin(WAT, MANIFEST), SignatureError, "unsigned", "not signed"
    )


def test_unsigned_is_accepted_loudly_in_development() -> None:
    loader = Loader(policy(OPS), Mode.DEVELOPMENT)
    verified = loader.accept(package_plugin(WAT, MANIFEST))
    assert (
        not verified.signed
        and verified.dev_reason is SignatureReason.UNSIGNED
        and verified.signers == ()
    )


def test_tampered_code_byte() -> None:
    data = bytearray(signed())
    index = data.rindex(b"\x41\x07")  # i32.const 7 in unload
    data[index + 1] = 8
    reject(Loader(policy(OPS)), bytes(data), SignatureError, "tampered", "tampered")
    reject(Loader(policy(OPS), Mode.DEVELOPMENT), bytes(data), SignatureError, "tampered", "")


def test_tampered_manifest() -> None:
    data = signed().replace(b'"1.2.0"', b'"9.9.9"')
    reject(Loader(policy(OPS)), data, SignatureError, "tampered", "exact module")


def test_tampered_hash_list_with_matching_key_id() -> None:
    """Attacker patches the code *and* the signed hash: the signature itself fails."""
    data = signed()
    sections = ws.parse_sections(data)
    parts = sig.split(data, sections)
    evil = bytearray(ws.build_module(ws.raw(data, s) for s in parts.content))
    evil[evil.rindex(b"\x41\x07") + 1] = 8
    evil_bytes = bytes(evil)
    decoded = sig.decode(parts.signature_payload or b"")
    hashes = sig.content_hashes(evil_bytes, ws.parse_sections(evil_bytes))
    forged = sig.SignatureData((replace(decoded.sets[0], hashes=hashes),))
    reject(
        Loader(policy(OPS)),
        sig.embed(evil_bytes, sig.encode(forged)),
        SignatureError,
        "tampered",
        "does not verify",
    )


def test_unknown_key() -> None:
    reject(
        Loader(policy(OPS)),
        signed(None, EVE),
        SignatureError,
        "untrusted_key",
        "not signed by any trusted key",
    )


def test_unknown_key_tolerated_in_development_but_not_marked_signed() -> None:
    verified = Loader(policy(OPS), Mode.DEVELOPMENT).accept(signed(None, EVE))
    assert (verified.signed, verified.dev_reason) == (False, SignatureReason.UNTRUSTED_KEY)


def test_revoked_key_even_when_its_file_is_still_trusted() -> None:
    trust = policy(OPS, revoked=frozenset({OPS.public_key}))
    reject(Loader(trust), signed(), SignatureError, "revoked_key", "revoked")
    reject(Loader(trust, Mode.DEVELOPMENT), signed(), SignatureError, "revoked_key", "revoked")


def test_revoked_cosigner_does_not_count_towards_threshold() -> None:
    trust = policy(OPS, DEV, revoked=frozenset({DEV.public_key}), thresholds={"hello": 2})
    reject(
        Loader(trust),
        signed(None, OPS, DEV),
        SignatureError,
        "threshold_not_met",
        "needs 2 distinct trusted signers, has 1",
    )


def test_key_outside_its_scope() -> None:
    trust = policy(OPS)
    scoped = replace(trust, keys=(replace(trust.keys[0], scopes=("billing-*",)),))
    reject(Loader(scoped), signed(), SignatureError, "out_of_scope", "may not sign plugin 'hello'")
    ok = signed({**MANIFEST, "name": "billing-eu"})
    assert Loader(scoped).accept(ok).manifest.name == "billing-eu"


def test_threshold_k_of_n() -> None:
    trust = policy(OPS, DEV, thresholds={"hel*": 2})
    reject(Loader(trust), signed(None, OPS), SignatureError, "threshold_not_met", "needs 2")
    both = Loader(trust).accept(signed(None, OPS, DEV))
    assert both.signers == ("key0", "key1")
    other = signed({**MANIFEST, "name": "other"}, OPS)
    assert Loader(trust).accept(other).signers == ("key0",)


def _with_delimiters(tail: list[bytes]) -> bytes:
    base = package_plugin(WAT, MANIFEST)
    delim = ws.encode_custom_section(sig.DELIMITER_NAME, b"\x11" * 16)
    return base + delim + b"".join(tail)


def test_truncated_to_a_signed_prefix() -> None:
    delim = ws.encode_custom_section(sig.DELIMITER_NAME, b"\x22" * 16)
    full = sign_bytes(_with_delimiters([ws.encode_custom_section("extra", b"x"), delim]), OPS)
    assert Loader(policy(OPS)).accept(full).signed
    truncated = full[: -len(delim) - len(ws.encode_custom_section("extra", b"x"))]
    reject(Loader(policy(OPS)), truncated, SignatureError, "tampered", "truncated")


@pytest.mark.parametrize("with_delimiter", [True, False])
def test_unsigned_part_appended_after_a_signed_delimiter(with_delimiter: bool) -> None:
    data = sign_bytes(_with_delimiters([]), OPS)
    assert Loader(policy(OPS)).accept(data).signed
    extra = ws.encode_custom_section("extra", b"appended later")
    if with_delimiter:
        extra += ws.encode_custom_section(sig.DELIMITER_NAME, b"\x33" * 16)
    reject(Loader(policy(OPS)), data + extra, SignatureError, "tampered", "appended")


def test_duplicate_manifest_section() -> None:
    data = sign_bytes(
        package_plugin(WAT, MANIFEST)
        + ws.encode_custom_section(MANIFEST_SECTION, b'{"name":"evil"}'),
        OPS,
    )
    reject(Loader(policy(OPS)), data, ManifestError, "manifest_invalid", "(duplicate)")


def test_duplicate_signature_section() -> None:
    data = signed()
    sections = ws.parse_sections(data)
    doubled = data + ws.raw(data, sections[0])
    reject(
        Loader(policy(OPS)),
        doubled,
        SignatureError,
        "malformed_signature",
        "after the first section",
    )


def test_duplicate_standard_section() -> None:
    unsigned = package_plugin(WAT, MANIFEST)
    sections = ws.parse_sections(unsigned)
    memory = next(s for s in sections if s.id == 5)
    doubled = ws.build_module(
        [ws.raw(unsigned, s) + (ws.raw(unsigned, s) if s is memory else b"") for s in sections]
    )
    reject(
        Loader(policy(OPS)),
        sign_bytes_raw(doubled),
        MalformedModuleError,
        "malformed",
        "duplicated",
    )


def sign_bytes_raw(module: bytes) -> bytes:
    """Sign without parsing (our signer refuses malformed input): hash every section."""
    hashes = (hashlib.sha256(module[8:]).digest(),)
    entry = sig.SignatureEntry(sig.default_key_id(OPS.public_key), OPS.sign(sig.PREFIX + hashes[0]))
    return sig.embed(module, sig.encode(sig.SignatureData((sig.SignedHashes(hashes, (entry,)),))))


@pytest.mark.parametrize("garbage", [b"", b"\xff" * 40, b"\x01\x01\x01\x07\x00"])
def test_garbage_in_the_signature_section(garbage: bytes) -> None:
    data = package_plugin(WAT, MANIFEST)
    bad = ws.HEADER + ws.encode_custom_section("signature", garbage) + data[8:]
    reject(Loader(policy(OPS)), bad, SignatureError, "malformed_signature", "malformed")
    reject(Loader(policy(OPS), Mode.DEVELOPMENT), bad, SignatureError, "malformed_signature", "")


def test_detached_signature() -> None:
    module, detached = sig.sign_module(package_plugin(WAT, MANIFEST), OPS)
    assert Loader(policy(OPS)).accept(module, detached).module == module


def test_detached_signature_for_other_bytes() -> None:
    _, detached = sig.sign_module(package_plugin(WAT, {**MANIFEST, "version": "1.0.0"}), OPS)
    other = package_plugin(WAT, MANIFEST)
    reject(Loader(policy(OPS)), other, SignatureError, "tampered", "exact module", detached)


def test_detached_with_embedded_is_ambiguous() -> None:
    _, detached = sig.sign_module(package_plugin(WAT, MANIFEST), OPS)
    reject(Loader(policy(OPS)), signed(), SignatureError, "ambiguous", "detached", detached)


def test_expired_signature() -> None:
    expired = signed({**MANIFEST, "not_after": "2027-01-01T00:00:00Z"})
    reject(Loader(policy(OPS)), expired, SignatureError, "expired", "expired at 2027-01-01")
    valid = signed({**MANIFEST, "not_after": "2027-01-15T08:00:00+00:00"})
    assert Loader(policy(OPS)).accept(valid).signed


def test_a_key_past_its_expiry_signs_nothing_and_a_valid_cosigner_still_counts() -> None:
    trust = policy(OPS, DEV)
    ops_expired = replace(trust.keys[0], not_after=NOW - 1)
    dev_valid = replace(trust.keys[1], not_after=NOW + 1)
    expiring = replace(trust, keys=(ops_expired, dev_valid))
    reject(Loader(expiring), signed(), SignatureError, "expired", "expired key(s) key0")
    assert Loader(expiring).accept(signed(None, OPS, DEV)).signers == ("key1",)
    assert Loader(replace(trust, keys=(dev_valid,))).accept(signed(None, DEV)).signed


def test_signature_with_empty_hash_set_list_is_unsigned() -> None:
    module = package_plugin(WAT, MANIFEST)
    empty = sig.embed(module, sig.encode(sig.SignatureData(())))
    reject(Loader(policy(OPS)), empty, SignatureError, "unsigned", "no signatures")


def test_manifest_is_read_only_after_the_signature_holds() -> None:
    """An unsigned module with a broken manifest is refused as unsigned, unparsed."""
    data = package_plugin(WAT, MANIFEST).replace(b'"hello"', b'"HELLO"')
    reject(Loader(policy(OPS)), data, SignatureError, "unsigned", "not signed")
    reject(
        Loader(policy(OPS), Mode.DEVELOPMENT),
        data,
        ManifestError,
        "manifest_invalid",
        "manifest field 'name'",
    )


def test_oversized_file_is_refused_before_parsing() -> None:
    huge = signed() + b"\x00" * ws.MAX_MODULE_BYTES
    reject(Loader(policy(OPS)), huge, ArtifactTooLargeError, "too_large", "over the 67108864 cap")


def test_too_many_sections() -> None:
    many = b"".join(ws.encode_custom_section("pad", b"") for _ in range(ws.MAX_SECTIONS))
    reject(
        Loader(policy(OPS)),
        signed() + many,
        ArtifactTooLargeError,
        "too_large",
        "more than 1024 sections",
    )
