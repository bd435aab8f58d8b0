"""A bounded reader and writer of a WebAssembly module's section list.

This is not a validator of wasm code (wasmtime does that when it compiles): it only splits a
binary into sections, which is what the manifest and signature layers need. It is the first
code that touches untrusted bytes, so every size is checked before it is used:

* the whole file is capped (:data:`MAX_MODULE_BYTES`) before a single byte is parsed;
* at most :data:`MAX_SECTIONS` sections;
* LEB128 numbers are unsigned 32-bit, at most 5 bytes, with no bits beyond 32;
* a section may not claim more bytes than remain, and a custom-section name must be UTF-8;
* a non-custom section id may appear at most once, in the order the core spec requires.

Only :class:`MalformedModuleError` and :class:`ArtifactTooLargeError` leave this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from forgeoned.errors import ArtifactTooLargeError, MalformedModuleError

MAGIC: Final = b"\x00asm"
VERSION_1: Final = b"\x01\x00\x00\x00"
HEADER: Final = MAGIC + VERSION_1
CUSTOM: Final = 0

MAX_MODULE_BYTES: Final = 64 * 1024 * 1024
MAX_SECTIONS: Final = 1024
MAX_NAME_BYTES: Final = 1024

# Non-custom section ids in the order the core spec (2.0 + exception handling) requires them:
# type import function table memory tag global export start element datacount code data.
_ORDER: Final = (1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11)
_RANK: Final = {section_id: rank for rank, section_id in enumerate(_ORDER)}


@dataclass(frozen=True, slots=True)
class Section:
    """One section of a module, as offsets into the module's bytes.

    ``data[start:end]`` is the whole section (id, size, content) exactly as it was read;
    ``data[payload_start:end]`` is the content after the name for a custom section, or the
    whole content for any other section.
    """

    id: int
    name: str | None
    start: int
    payload_start: int
    end: int

    @property
    def is_custom(self) -> bool:
        return self.id == CUSTOM


def read_u32(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """Decode an unsigned LEB128 ``u32`` at ``pos`` (not past ``end``); returns (value, next)."""
    result = 0
    for index in range(5):
        if pos >= end:
            raise MalformedModuleError(f"truncated LEB128 number in {what}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            if index == 4 and byte > 0x0F:
                raise MalformedModuleError(f"LEB128 number in {what} exceeds 32 bits")
            return result, pos
    raise MalformedModuleError(f"LEB128 number in {what} is longer than 5 bytes")


def encode_u32(value: int) -> bytes:
    """Encode ``value`` as the shortest unsigned LEB128."""
    if not 0 <= value < 1 << 32:
        raise ValueError(f"{value} does not fit in a u32")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _check_order(section_id: int, last_rank: int, index: int) -> int:
    rank = _RANK.get(section_id)
    if rank is None:
        raise MalformedModuleError(f"section #{index} has unknown id {section_id}")
    if rank <= last_rank:
        raise MalformedModuleError(
            f"section #{index} (id {section_id}) is duplicated or out of order"
        )
    return rank


def parse_sections(
    data: bytes, *, max_bytes: int = MAX_MODULE_BYTES, max_sections: int = MAX_SECTIONS
) -> tuple[Section, ...]:
    """Split a wasm binary into its sections, enforcing every bound in the module docstring."""
    if len(data) > max_bytes:
        raise ArtifactTooLargeError(f"module is {len(data)} bytes, over the {max_bytes} cap")
    if len(data) < len(HEADER) or data[:4] != MAGIC:
        raise MalformedModuleError("not a WebAssembly module (bad magic number)")
    if data[4:8] != VERSION_1:
        raise MalformedModuleError("unsupported WebAssembly version (only 1 is accepted)")
    sections: list[Section] = []
    pos, end, last_rank = len(HEADER), len(data), -1
    while pos < end:
        index = len(sections)
        if index >= max_sections:
            raise ArtifactTooLargeError(f"module has more than {max_sections} sections")
        start, section_id = pos, data[pos]
        size, pos = read_u32(data, pos + 1, end, f"size of section #{index}")
        if size > end - pos:
            raise MalformedModuleError(f"section #{index} claims {size} bytes past end of file")
        section_end = pos + size
        name: str | None = None
        if section_id == CUSTOM:
            name, pos = _read_name(data, pos, section_end, index)
        else:
            last_rank = _check_order(section_id, last_rank, index)
        sections.append(Section(section_id, name, start, pos, section_end))
        pos = section_end
    return tuple(sections)


def _read_name(data: bytes, pos: int, end: int, index: int) -> tuple[str, int]:
    length, pos = read_u32(data, pos, end, f"name of custom section #{index}")
    if length > end - pos or length > MAX_NAME_BYTES:
        raise MalformedModuleError(f"custom section #{index} has an oversized name")
    try:
        name = data[pos : pos + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedModuleError(f"custom section #{index} name is not UTF-8") from exc
    return name, pos + length


def encode_custom_section(name: str, payload: bytes) -> bytes:
    """A complete custom section (id 0, size, name, payload)."""
    raw_name = name.encode("utf-8")
    content = encode_u32(len(raw_name)) + raw_name + payload
    return b"\x00" + encode_u32(len(content)) + content


def build_module(sections: Iterable[bytes]) -> bytes:
    """Header followed by the given already-encoded sections."""
    return HEADER + b"".join(sections)


def raw(data: bytes, section: Section) -> bytes:
    """The exact bytes of ``section`` (id, size and content)."""
    return data[section.start : section.end]


def payload(data: bytes, section: Section) -> bytes:
    """The content of ``section`` (after the name for a custom section)."""
    return data[section.payload_start : section.end]


def custom_sections(sections: Iterable[Section], name: str) -> list[Section]:
    return [s for s in sections if s.name == name]
