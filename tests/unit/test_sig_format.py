"""The wasmsign2 payload codec: round trip, limits, garbage, adding signers."""

from __future__ import annotations

import pytest

from forgeoned.cli.devtools import test_key
from forgeoned.core import signature as sig
from forgeoned.core import wasm_sections as ws
from forgeoned.errors import ForgeonedError, SignatureError

H = bytes(range(32))
ENTRY = sig.SignatureEntry(b"id", b"\x07" * 64)
MODULE = ws.build_module([b"\x01\x04\x01\x60\x00\x00", ws.encode_custom_section("x", b"1")])


def payload(sets: int = 1, hashes: int = 1, sigs: int = 1) -> bytes:
    hash_set = sig.SignedHashes((H,) * hashes, (ENTRY,) * sigs)
    return sig.encode(sig.SignatureData((hash_set,) * sets))


def test_round_trip() -> None:
    data = sig.SignatureData(
        (sig.SignedHashes((H, H[::-1]), (ENTRY, sig.SignatureEntry(b"", b"\x01" * 64))),)
    )
    assert sig.decode(sig.encode(data)) == data


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sets": 64}, None),
        ({"sets": 65}, "65 signed hash sets, over the limit of 64"),
        ({"hashes": 64}, None),
        ({"hashes": 65}, "65 hashes in a set, outside 1..64"),
        ({"hashes": 0}, "0 hashes in a set"),
        ({"sigs": 256}, None),
        ({"sigs": 257}, "257 signatures in a set, over the limit 256"),
    ],
)
def test_wasmsign2_limits(kwargs: dict[str, int], message: str | None) -> None:
    data = payload(**kwargs)
    if message is None:
        assert len(sig.decode(data).sets) == kwargs.get("sets", 1)
        return
    with pytest.raises(SignatureError, match=message) as info:
        sig.decode(data)
    assert info.value.code == "malformed_signature"


def test_signature_section_size_cap() -> None:
    big = b"\x01\x01\x01" + b"\x00" * sig.MAX_SIGNATURE_SECTION_BYTES
    with pytest.raises(SignatureError, match="over the 262144 cap"):
        sig.decode(big)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\x02\x01\x01\x00", "unsupported version/content/hash header 020101"),
        (b"\x01\x01\x02\x00", "header 010102"),
        (b"\x01\x01\x01\x01", "truncated LEB128"),
        (b"\x01\x01\x01\x01\x05\x01", "claims more bytes than remain"),
        (b"\x01\x01\x01\x00\x00", "1 unexpected trailing bytes in signature section"),
        (payload()[:-1], "claims more bytes than remain"),
        (payload().replace(b"\x02id\x01\x40", b"\x02id\x02\x40"), "unsupported signature algo"),
        (payload().replace(b"\x02id\x01\x40", b"\x02id\x01\x3f"), "signature of 63 bytes"),
        (payload().replace(b"\x02id", b"\x41id"), "key id of 65 bytes"),
    ],
)
def test_garbage_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message) as info:
        sig.decode(data)
    assert str(info.value).startswith("signature section is malformed")
    assert "\n" not in str(info.value)


def test_hashes_snapshot_at_each_delimiter() -> None:
    delim = ws.encode_custom_section(sig.DELIMITER_NAME, b"\x00" * 16)
    data = ws.build_module([b"\x01\x04\x01\x60\x00\x00", delim, ws.encode_custom_section("a", b"")])
    hashes = sig.content_hashes(data, ws.parse_sections(data))
    assert len(hashes) == 2 and hashes[0] != hashes[1]
    ends_with_delim = ws.build_module([b"\x01\x04\x01\x60\x00\x00", delim])
    assert len(sig.content_hashes(ends_with_delim, ws.parse_sections(ends_with_delim))) == 1


def test_a_second_signer_joins_the_same_set() -> None:
    first = sig.embed(*sig.sign_module(MODULE, test_key(1)))
    module, both = sig.sign_module(first, test_key(2))
    assert module == MODULE
    decoded = sig.decode(both)
    assert len(decoded.sets) == 1
    assert [e.key_id for e in decoded.sets[0].signatures] == [
        sig.default_key_id(test_key(1).public_key),
        sig.default_key_id(test_key(2).public_key),
    ]


def test_signing_twice_with_one_key_is_refused_and_changes_nothing() -> None:
    first = sig.embed(*sig.sign_module(MODULE, test_key(1)))
    before = bytes(first)
    with pytest.raises(SignatureError, match="already signed by this key"):
        sig.sign_module(first, test_key(1))
    assert first == before


def test_detached_and_embedded_together_are_ambiguous() -> None:
    first = sig.embed(*sig.sign_module(MODULE, test_key(1)))
    with pytest.raises(SignatureError, match="both an embedded and a detached"):
        sig.sign_module(first, test_key(2), detached_payload=payload())


def test_signature_section_not_first_is_refused() -> None:
    signed = sig.embed(*sig.sign_module(MODULE, test_key(1)))
    sections = ws.parse_sections(signed)
    moved = ws.build_module([ws.raw(signed, s) for s in (*sections[1:], sections[0])])
    with pytest.raises(SignatureError, match="appears after the first section"):
        sig.split(moved, ws.parse_sections(moved))
    with pytest.raises(ForgeonedError):
        sig.sign_module(moved, test_key(2))


class CountingVerifier:
    """A fake Ed25519 that rejects everything and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        self.calls += 1
        return False


def test_signature_checks_per_artifact_are_bounded() -> None:
    anonymous = sig.SignatureEntry(b"", b"\x00" * 64)
    hostile = sig.SignatureData((sig.SignedHashes((H,), (anonymous,) * 256),) * 15)
    decoded = sig.decode(sig.encode(hostile))  # within every format limit
    candidates = {bytes([n]) * 32: b"id%d" % n for n in range(2)}
    counter = CountingVerifier()
    with pytest.raises(SignatureError, match="more than 4096 signature checks"):
        sig.strict_signers(decoded, H, candidates, counter)
    assert counter.calls == sig.MAX_VERIFICATIONS
    one_key = CountingVerifier()
    assert sig.strict_signers(decoded, H, dict(list(candidates.items())[:1]), one_key) == set()
    assert one_key.calls == 15 * 256  # under the budget: every signature was checked
