"""The ``forgeone.manifest`` custom section: find, read and (re)write it in a module.

The schema lives in :mod:`forgeoned.core.manifest`, its validation in
:mod:`forgeoned.core.manifest_parse`; this module only deals with where the manifest sits in the
binary. A module must carry exactly one such section.
"""

from __future__ import annotations

from typing import Final

from forgeoned.core import wasm_sections as ws
from forgeoned.core.manifest import Manifest
from forgeoned.core.manifest_parse import parse_manifest
from forgeoned.core.signature import SECTION_NAME as SIGNATURE_SECTION
from forgeoned.errors import ManifestError, SignatureError, SignatureReason

SECTION_NAME: Final = "forgeone.manifest"


def manifest_payload(data: bytes, sections: tuple[ws.Section, ...]) -> bytes:
    """The raw JSON of the single manifest section; error if it is missing or duplicated."""
    found = ws.custom_sections(sections, SECTION_NAME)
    if not found:
        raise ManifestError(f"module has no {SECTION_NAME!r} custom section")
    if len(found) > 1:
        raise ManifestError(f"module has {len(found)} {SECTION_NAME!r} sections (duplicate)")
    return ws.payload(data, found[0])


def read_manifest(data: bytes, sections: tuple[ws.Section, ...]) -> Manifest:
    return parse_manifest(manifest_payload(data, sections))


def with_manifest(module: bytes, manifest: Manifest) -> bytes:
    """``module`` with its manifest section replaced by (or appended as) ``manifest``.

    Packaging happens before signing: a signed module is refused, since changing its content
    would invalidate every signature it carries.
    """
    sections = ws.parse_sections(module)
    if any(s.name == SIGNATURE_SECTION for s in sections):
        raise SignatureError(
            "module is already signed; package the unsigned module, then sign it",
            SignatureReason.ALREADY_SIGNED,
        )
    kept = [ws.raw(module, s) for s in sections if s.name != SECTION_NAME]
    kept.append(ws.encode_custom_section(SECTION_NAME, manifest.to_bytes()))
    return ws.build_module(kept)
