"""The bounded section parser: limits, LEB128 rules, ordering, custom-section names."""

from __future__ import annotations

import pytest

from forgeoned.core import wasm_sections as ws
from forgeoned.errors import ArtifactTooLargeError, MalformedModuleError

TYPE = b"\x01\x04\x01\x60\x00\x00"  # one type: () -> ()
FUNC = b"\x03\x02\x01\x00"


def module(*sections: bytes) -> bytes:
    return ws.build_module(sections)


def test_sections_are_split_with_exact_offsets() -> None:
    custom = ws.encode_custom_section("hello", b"payload")
    data = module(TYPE, FUNC, custom)
    sections = ws.parse_sections(data)
    assert [s.id for s in sections] == [1, 3, 0]
    assert ws.raw(data, sections[0]) == TYPE
    assert ws.raw(data, sections[2]) == custom
    assert sections[2].name == "hello"
    assert ws.payload(data, sections[2]) == b"payload"
    assert ws.custom_sections(sections, "hello") == [sections[2]]


def test_empty_module_has_no_sections() -> None:
    assert ws.parse_sections(ws.HEADER) == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad magic"),
        (b"\x00asx\x01\x00\x00\x00", "bad magic"),
        (b"\x00asm\x02\x00\x00\x00", "unsupported WebAssembly version"),
        (ws.HEADER + b"\x01", "truncated LEB128"),
        (ws.HEADER + b"\x01\x05\x00", "past end of file"),
        (ws.HEADER + b"\x01\x80\x80\x80\x80\x80\x00", "longer than 5 bytes"),
        (ws.HEADER + b"\x01\xff\xff\xff\xff\x1f", "exceeds 32 bits"),
        (ws.HEADER + b"\x0e\x00", "unknown id 14"),
        (ws.HEADER + TYPE + TYPE, "duplicated or out of order"),
        (ws.HEADER + FUNC + TYPE, "duplicated or out of order"),
        (ws.HEADER + b"\x00\x02\x05a", "oversized name"),
        (ws.HEADER + b"\x00\x02\x01\xff", "not UTF-8"),
    ],
)
def test_malformed_input_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(MalformedModuleError, match=message) as info:
        ws.parse_sections(data)
    assert "\n" not in str(info.value)
    assert info.value.code == "malformed"


def test_file_size_cap_is_checked_before_parsing() -> None:
    data = module(TYPE) + b"\xff" * 64  # garbage after the cap would be malformed
    with pytest.raises(ArtifactTooLargeError, match="over the 16 cap"):
        ws.parse_sections(data, max_bytes=16)


def test_section_count_cap() -> None:
    many = module(*(ws.encode_custom_section("c", b"") for _ in range(11)))
    assert len(ws.parse_sections(many, max_sections=11)) == 11
    with pytest.raises(ArtifactTooLargeError, match="more than 10 sections"):
        ws.parse_sections(many, max_sections=10)


def test_padded_leb128_sizes_are_accepted_and_kept_verbatim() -> None:
    padded = b"\x03\x82\x80\x80\x80\x00\x01\x00"  # size 2 written in 5 bytes
    data = module(TYPE, padded)
    sections = ws.parse_sections(data)
    assert ws.raw(data, sections[1]) == padded


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32 - 1])
def test_leb128_round_trip(value: int) -> None:
    encoded = ws.encode_u32(value)
    assert ws.read_u32(encoded, 0, len(encoded), "t") == (value, len(encoded))


def test_leb128_refuses_to_encode_out_of_range() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        ws.encode_u32(2**32)
