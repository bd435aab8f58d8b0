"""The wasmsign2 vectors made with the reference implementation (../shared/vectors/wasmsign2).

Every vector must give ``expected.json``'s strict verdict through the real pipeline, and our
signer must reproduce the reference library's bytes exactly. The vectors are read in place,
never copied into this repository.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from shared_files import WASMSIGN2_VECTORS, WHERE

from forgeoned.adapters.crypto.ed25519 import NaclEd25519
from forgeoned.adapters.crypto.keys import load_public_key, load_secret_key
from forgeoned.core import signature as sig
from forgeoned.core import wasm_sections as ws
from forgeoned.core.artifact import strict_signers
from forgeoned.core.trust import TrustedKey, TrustPolicy
from forgeoned.errors import SignatureError

VECTORS = WASMSIGN2_VECTORS
pytestmark = pytest.mark.skipif(
    not (VECTORS / "expected.json").is_file(),
    reason=f"wasmsign2 vectors not found at {VECTORS} ({WHERE})",
)


def expected() -> dict[str, Any]:
    if not (VECTORS / "expected.json").is_file():
        return {"vectors": {}}
    result: dict[str, Any] = json.loads((VECTORS / "expected.json").read_text())
    return result


def strict_verdict(data: bytes, detached: bytes | None, public_key: bytes) -> bool | str:
    """The loader's strict rule (``core.artifact.strict_signers``) with one trusted key."""
    trust = TrustPolicy(keys=(TrustedKey("k", public_key),), ed25519=NaclEd25519())
    try:
        return public_key in strict_signers(data, ws.parse_sections(data), detached, trust)
    except SignatureError as exc:
        return "NoSignatures" if exc.code == "unsigned" else False


@pytest.mark.parametrize("name", sorted(expected()["vectors"]))
def test_every_vector_gets_the_strict_verdict(name: str) -> None:
    vector = expected()["vectors"][name]
    data = (VECTORS / vector["file"]).read_bytes()
    detached_name = vector["detached_signature"]
    detached = (VECTORS / detached_name).read_bytes() if detached_name else None
    for key in ("A", "B"):
        public_key = load_public_key(VECTORS / f"key{key}.pk")
        want = vector["proposed_loader_strict_policy"][key]
        assert strict_verdict(data, detached, public_key) == want, (name, key)


def test_key_files_decode_to_the_documented_keys() -> None:
    keys = expected()["keys"]
    for key in ("A", "B"):
        secret = load_secret_key(VECTORS / f"key{key}.sk")
        assert secret.seed.hex() == keys[key]["seed_hex"]
        assert secret.public_key.hex() == keys[key]["public_key_raw32_hex"]
        assert load_public_key(VECTORS / f"key{key}.pk") == secret.public_key
        assert sig.default_key_id(secret.public_key).hex() == keys[key]["default_key_id_hex"]
    assert load_public_key(VECTORS / "keyA.pem") == load_public_key(VECTORS / "keyA.pk")


def test_signing_reproduces_the_reference_bytes() -> None:
    module = (VECTORS / "module.wasm").read_bytes()
    key_a = load_secret_key(VECTORS / "keyA.sk")
    key_b = load_secret_key(VECTORS / "keyB.sk")
    unsigned, payload = sig.sign_module(module, key_a)
    assert unsigned == module
    assert payload == (VECTORS / "detached-A.sig").read_bytes()
    signed_a = sig.embed(unsigned, payload)
    assert signed_a == (VECTORS / "signed-keyid-A.wasm").read_bytes()
    # a second signer joins the same hash set, exactly like the reference sign_multi
    again, payload_ab = sig.sign_module(signed_a, key_b)
    assert sig.embed(again, payload_ab) == (VECTORS / "signed-multi-AB.wasm").read_bytes()


def test_signed_output_matches_the_annotated_layout() -> None:
    """Byte by byte against the annotated ``signed-keyid-A.wasm`` in the vectors' README."""
    module = (VECTORS / "module.wasm").read_bytes()
    key_a = load_secret_key(VECTORS / "keyA.sk")
    out = sig.embed(*sig.sign_module(module, key_a))
    assert out[:8] == b"\x00asm\x01\x00\x00\x00"
    assert out[8:11] == b"\x00\x81\x01"  # custom section, size 129
    assert out[11:21] == b"\x09signature"
    assert out[21:24] == b"\x01\x01\x01"  # spec version, content type, SHA-256
    assert out[24] == 1  # one signed-hashes set
    assert out[25] == 0x72  # its length, 114
    assert out[26] == 1  # one hash
    assert out[27:59].hex().startswith("5fa5f25e") and out[27:59].hex().endswith("75750032")
    assert out[59] == 1  # one signature
    assert out[60] == 0x4F  # its length, 79
    assert out[61:74] == b"\x0c" + bytes.fromhex("a87b10d4934d3a04633a3faf")
    assert out[74] == 1  # Ed25519
    assert out[75] == 0x40  # 64-byte signature
    assert out[140:] == module[8:]  # the original sections follow, unchanged
