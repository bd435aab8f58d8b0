"""The wasmsign2 signature format (WebAssembly tool-conventions ``Signatures.md``).

Layout of the ``signature`` custom section payload (also the whole content of a detached
``FILE.wasm.sig``)::

    spec_version u8 = 1, content_type u8 = 1 (module), hash_fn u8 = 1 (SHA-256)
    set_count varuint32                     at most MAX_SETS
    set_count x { length varuint32          (the reference implementation writes it)
                  hash_count varuint32, hash_count x 32 bytes
                  sig_count varuint32, sig_count x { length varuint32,
                      key_id_len varuint32, key_id, algorithm u8 = 1 (Ed25519),
                      sig_len varuint32, signature } }

The content hashes are one running SHA-256 over every section after the signature section
(raw bytes: id, size, content), snapshotted after each ``signature_delimiter`` section, plus
the final value when the last section is not a delimiter. A signature is Ed25519 over
``"wasmsig" 01 01 01 || hash_1 || … || hash_n`` of its set.

Strictness (DESIGN.md §2) is applied by :func:`strict_signers`: a set counts only if its
**last** hash equals the hash of the whole module after the signature section, so a signed
prefix (truncation) or an unsigned suffix (appending) never verifies.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final, Protocol

from forgeoned.core import wasm_sections as ws
from forgeoned.errors import ForgeonedError, SignatureError, SignatureReason

SECTION_NAME: Final = "signature"
DELIMITER_NAME: Final = "signature_delimiter"
SPEC_VERSION: Final = 1
CONTENT_TYPE_MODULE: Final = 1
HASH_SHA256: Final = 1
ALG_ED25519: Final = 1
HASH_LEN: Final = 32
SIG_LEN: Final = 64
MAX_KEY_ID: Final = 64

MAX_SETS: Final = 64
MAX_HASHES_PER_SET: Final = 64
MAX_SIGNATURES_PER_SET: Final = 256
MAX_SIGNATURE_SECTION_BYTES: Final = 256 * 1024
# Ed25519 checks one artifact may cost (a hostile file could otherwise pair thousands of
# key-id-less signatures with every trusted key); far above any honest signer count.
MAX_VERIFICATIONS: Final = 4096

PREFIX: Final = b"wasmsig" + bytes((SPEC_VERSION, CONTENT_TYPE_MODULE, HASH_SHA256))


class Ed25519Verifier(Protocol):
    """The Ed25519 primitive, implemented in ``forgeoned.adapters.crypto.ed25519``."""

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool: ...


class Ed25519Signer(Protocol):
    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class SignatureEntry:
    key_id: bytes
    signature: bytes
    algorithm: int = ALG_ED25519


@dataclass(frozen=True, slots=True)
class SignedHashes:
    hashes: tuple[bytes, ...]
    signatures: tuple[SignatureEntry, ...]

    @property
    def message(self) -> bytes:
        return PREFIX + b"".join(self.hashes)


@dataclass(frozen=True, slots=True)
class SignatureData:
    sets: tuple[SignedHashes, ...]


def default_key_id(public_key: bytes) -> bytes:
    """wasmsign2's default key id: HMAC-SHA256(key=raw public key, "key_id")[:12]."""
    return hmac.new(public_key, b"key_id", hashlib.sha256).digest()[:12]


def _bad(problem: str) -> SignatureError:
    return SignatureError(
        f"signature section is malformed: {problem}", SignatureReason.MALFORMED_SIGNATURE
    )


class _Reader:
    def __init__(self, data: bytes, start: int, end: int, what: str) -> None:
        self.data, self.pos, self.end, self.what = data, start, end, what

    def u32(self) -> int:
        try:
            value, self.pos = ws.read_u32(self.data, self.pos, self.end, self.what)
        except ForgeonedError as exc:
            raise _bad(str(exc)) from exc
        return value

    def take(self, length: int) -> bytes:
        if length > self.end - self.pos:
            raise _bad(f"{self.what} is truncated")
        out = self.data[self.pos : self.pos + length]
        self.pos += length
        return out

    def sub(self, what: str) -> _Reader:
        length = self.u32()
        if length > self.end - self.pos:
            raise _bad(f"{what} claims more bytes than remain")
        reader = _Reader(self.data, self.pos, self.pos + length, what)
        self.pos += length
        return reader

    def done(self) -> None:
        if self.pos != self.end:
            raise _bad(f"{self.end - self.pos} unexpected trailing bytes in {self.what}")


def decode(payload: bytes) -> SignatureData:
    """Parse a signature payload; every bound is checked before allocation."""
    if len(payload) > MAX_SIGNATURE_SECTION_BYTES:
        raise SignatureError(
            f"signature section is {len(payload)} bytes, over the "
            f"{MAX_SIGNATURE_SECTION_BYTES} cap",
            SignatureReason.MALFORMED_SIGNATURE,
        )
    top = _Reader(payload, 0, len(payload), "signature section")
    header = top.take(3)
    if header != PREFIX[-3:]:
        raise _bad(f"unsupported version/content/hash header {header.hex()}")
    set_count = top.u32()
    if set_count > MAX_SETS:
        raise _bad(f"{set_count} signed hash sets, over the limit of {MAX_SETS}")
    sets = [_decode_set(top.sub(f"hash set #{i}")) for i in range(set_count)]
    top.done()
    return SignatureData(tuple(sets))


def _decode_set(rd: _Reader) -> SignedHashes:
    hash_count = rd.u32()
    if not 1 <= hash_count <= MAX_HASHES_PER_SET:
        raise _bad(f"{hash_count} hashes in a set, outside 1..{MAX_HASHES_PER_SET}")
    hashes = tuple(rd.take(HASH_LEN) for _ in range(hash_count))
    sig_count = rd.u32()
    if sig_count > MAX_SIGNATURES_PER_SET:
        raise _bad(f"{sig_count} signatures in a set, over the limit {MAX_SIGNATURES_PER_SET}")
    signatures = []
    for _ in range(sig_count):
        entry = rd.sub("signature record")
        key_id_len = entry.u32()
        if key_id_len > MAX_KEY_ID:
            raise _bad(f"key id of {key_id_len} bytes")
        key_id = entry.take(key_id_len)
        algorithm = entry.take(1)[0]
        if algorithm != ALG_ED25519:
            raise _bad(f"unsupported signature algorithm {algorithm}")
        sig_len = entry.u32()
        if sig_len != SIG_LEN:
            raise _bad(f"Ed25519 signature of {sig_len} bytes")
        signature = entry.take(SIG_LEN)
        entry.done()
        signatures.append(SignatureEntry(key_id, signature, algorithm))
    rd.done()
    return SignedHashes(hashes, tuple(signatures))


def encode(data: SignatureData) -> bytes:
    out = bytearray(PREFIX[-3:])
    out += ws.encode_u32(len(data.sets))
    for hash_set in data.sets:
        body = bytearray(ws.encode_u32(len(hash_set.hashes)))
        body += b"".join(hash_set.hashes)
        body += ws.encode_u32(len(hash_set.signatures))
        for sig in hash_set.signatures:
            entry = ws.encode_u32(len(sig.key_id)) + sig.key_id + bytes((sig.algorithm,))
            entry += ws.encode_u32(len(sig.signature)) + sig.signature
            body += ws.encode_u32(len(entry)) + entry
        out += ws.encode_u32(len(body)) + body
    return bytes(out)


def content_hashes(data: bytes, content: tuple[ws.Section, ...]) -> tuple[bytes, ...]:
    """The hashes a signer signs over ``content`` (sections after the signature section)."""
    hasher = hashlib.sha256()
    hashes: list[bytes] = []
    for section in content:
        hasher.update(memoryview(data)[section.start : section.end])
        if section.name == DELIMITER_NAME:
            hashes.append(hasher.copy().digest())
    if not hashes or content[-1].name != DELIMITER_NAME:
        hashes.append(hasher.digest())
    return tuple(hashes)


@dataclass(frozen=True, slots=True)
class SplitModule:
    """A module split into its (optional) embedded signature and the signed content."""

    signature_payload: bytes | None
    content: tuple[ws.Section, ...]


def split(data: bytes, sections: tuple[ws.Section, ...]) -> SplitModule:
    """Separate the leading ``signature`` section; any other ``signature`` section is an error."""
    first_is_sig = bool(sections) and sections[0].name == SECTION_NAME
    content = sections[1:] if first_is_sig else sections
    if any(s.name == SECTION_NAME for s in content):
        raise SignatureError(
            "a 'signature' section appears after the first section (duplicate or misplaced)",
            SignatureReason.MALFORMED_SIGNATURE,
        )
    payload = ws.payload(data, sections[0]) if first_is_sig else None
    return SplitModule(payload, content)


def strict_signers(
    data: SignatureData,
    full_hash: bytes,
    candidates: dict[bytes, bytes],
    ed25519: Ed25519Verifier,
) -> set[bytes]:
    """Public keys (from ``candidates``: public key -> key id) that strictly signed the module.

    Only sets whose last hash is ``full_hash`` are considered; a signature with a key id is
    tried only against the keys with that id, one without a key id against every candidate.
    """
    signers: set[bytes] = set()
    budget = MAX_VERIFICATIONS
    for hash_set in data.sets:
        if hash_set.hashes[-1] != full_hash:
            continue
        message = hash_set.message
        for sig in hash_set.signatures:
            for public_key, key_id in candidates.items():
                if public_key in signers or (sig.key_id and sig.key_id != key_id):
                    continue
                budget -= 1
                if budget < 0:
                    raise _bad(f"more than {MAX_VERIFICATIONS} signature checks needed")
                if ed25519.verify(public_key, message, sig.signature):
                    signers.add(public_key)
    return signers


def sign_module(
    data: bytes, signer: Ed25519Signer, *, detached_payload: bytes | None = None
) -> tuple[bytes, bytes]:
    """Sign ``data``; returns (module without signature section, new signature payload).

    An existing signature (embedded, or ``detached_payload``) is kept: if one of its sets has
    exactly this module's hashes the new signature joins that set (how wasmsign2 adds a second
    signer), otherwise a new set is appended. Signing twice with one key is an error.
    """
    sections = ws.parse_sections(data)
    parts = split(data, sections)
    if parts.signature_payload is not None and detached_payload is not None:
        raise SignatureError(
            "module has both an embedded and a detached signature", SignatureReason.AMBIGUOUS
        )
    existing_payload = parts.signature_payload or detached_payload
    existing = decode(existing_payload) if existing_payload else SignatureData(())
    hashes = content_hashes(data, parts.content)
    key_id = default_key_id(signer.public_key)
    entry = SignatureEntry(key_id, signer.sign(PREFIX + b"".join(hashes)))
    sets = list(existing.sets)
    for index, hash_set in enumerate(sets):
        if hash_set.hashes == hashes:
            if any(s.key_id == key_id for s in hash_set.signatures):
                raise SignatureError(
                    "module is already signed by this key", SignatureReason.ALREADY_SIGNED
                )
            sets[index] = SignedHashes(hashes, (*hash_set.signatures, entry))
            break
    else:
        sets.append(SignedHashes(hashes, (entry,)))
    new_payload = encode(SignatureData(tuple(sets)))
    decode(new_payload)  # enforce the same limits on what we write as on what we read
    module = ws.build_module(ws.raw(data, s) for s in parts.content)
    return module, new_payload


def embed(module: bytes, payload: bytes) -> bytes:
    """Put ``payload`` as the first section of an unsigned ``module``."""
    return ws.HEADER + ws.encode_custom_section(SECTION_NAME, payload) + module[len(ws.HEADER) :]
