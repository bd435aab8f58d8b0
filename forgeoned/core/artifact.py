"""The one verification pipeline for plugin artifacts (daemon, control API and CLI share it).

Order matters and is chosen so that nothing untrusted is interpreted more than necessary:

1. split the bytes into sections (bounded; malformed / too large);
2. check the signatures cryptographically and **strictly** (the last signed hash must be the
   hash of the whole module after the signature section);
3. only then read the manifest (its name decides scopes and thresholds), then expiry.

The bytes returned in :attr:`VerifiedArtifact.module` are the very bytes that were hashed
(read once by the caller, never re-read), so what gets compiled is what was verified.
Rollback is checked separately with :mod:`forgeoned.core.rollback`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from forgeoned.core import signature as sig
from forgeoned.core import wasm_sections as ws
from forgeoned.core.manifest import Manifest
from forgeoned.core.manifest_parse import parse_rfc3339
from forgeoned.core.manifest_section import read_manifest
from forgeoned.core.trust import Mode, TrustedKey, TrustPolicy
from forgeoned.errors import ArtifactError, SignatureError, SignatureReason

# Reasons that development mode tolerates (the load is audited loudly instead). A tampered or
# malformed signature, or one by a revoked key, is refused in every mode.
DEV_TOLERATED: Final = frozenset(
    {
        SignatureReason.UNSIGNED,
        SignatureReason.UNTRUSTED_KEY,
        SignatureReason.OUT_OF_SCOPE,
        SignatureReason.THRESHOLD_NOT_MET,
        SignatureReason.EXPIRED,
    }
)


@dataclass(frozen=True, slots=True)
class VerifiedArtifact:
    manifest: Manifest
    sha256: str  # hex SHA-256 of the exact file bytes
    module: bytes  # exactly the bytes that were verified; these get compiled
    signers: tuple[str, ...]  # names of the trusted keys (trust-file stems) that signed
    signed: bool  # False only when accepted solely because of development mode
    dev_reason: SignatureReason | None = None  # why production mode would have rejected it


def strict_signers(
    data: bytes, sections: tuple[ws.Section, ...], detached: bytes | None, trust: TrustPolicy
) -> set[bytes]:
    """Non-revoked public keys of ``trust`` that strictly signed ``data``.

    Raises :class:`SignatureError` (unsigned, tampered, revoked_key, untrusted_key,
    malformed_signature, ambiguous) when there is none.
    """
    parts = sig.split(data, sections)
    if parts.signature_payload is not None and detached is not None:
        raise SignatureError(
            "module has an embedded signature and a detached one was given too",
            SignatureReason.AMBIGUOUS,
        )
    payload = parts.signature_payload if detached is None else detached
    if payload is None:
        raise SignatureError("module is not signed", SignatureReason.UNSIGNED)
    decoded = sig.decode(payload)
    if not any(s.signatures for s in decoded.sets):
        raise SignatureError("signature section holds no signatures", SignatureReason.UNSIGNED)
    full_hash = sig.content_hashes(data, parts.content)[-1]
    if not any(s.hashes[-1] == full_hash for s in decoded.sets):
        raise SignatureError(
            "no signed hash covers this exact module (tampered, truncated or appended to)",
            SignatureReason.TAMPERED,
        )
    keys = sig.strict_signers(decoded, full_hash, trust.candidates(), trust.ed25519)
    if keys and keys <= trust.revoked:
        raise SignatureError("signed only by revoked key(s)", SignatureReason.REVOKED_KEY)
    if not keys:
        expected = {k.key_id for k in trust.keys}
        named = {e.key_id for s in decoded.sets for e in s.signatures}
        if named & expected:
            raise SignatureError(
                "signature by a trusted key id does not verify (tampered)",
                SignatureReason.TAMPERED,
            )
        raise SignatureError("not signed by any trusted key", SignatureReason.UNTRUSTED_KEY)
    return keys - trust.revoked


def _authorised(
    manifest: Manifest, keys: set[bytes], trust: TrustPolicy, now: float
) -> list[TrustedKey]:
    signed = [k for pk in keys if (k := trust.by_public_key(pk)) is not None]
    trusted = [k for k in signed if not k.expired(now)]
    if signed and not trusted:
        names = ", ".join(sorted(k.name for k in signed))
        raise SignatureError(f"signed only by expired key(s) {names}", SignatureReason.EXPIRED)
    in_scope = sorted((k for k in trusted if k.may_sign(manifest.name)), key=lambda k: k.name)
    if not in_scope:
        names = ", ".join(sorted(k.name for k in trusted))
        raise SignatureError(
            f"key(s) {names} may not sign plugin {manifest.name!r} (out of scope)",
            SignatureReason.OUT_OF_SCOPE,
        )
    needed = trust.threshold(manifest.name)
    if len(in_scope) < needed:
        raise SignatureError(
            f"plugin {manifest.name!r} needs {needed} distinct trusted signers, "
            f"has {len(in_scope)}",
            SignatureReason.THRESHOLD_NOT_MET,
        )
    return in_scope


def _check_expiry(manifest: Manifest, now: float) -> None:
    if manifest.not_after is not None and now > parse_rfc3339(manifest.not_after):
        raise SignatureError(f"signature expired at {manifest.not_after}", SignatureReason.EXPIRED)


def name_rejection(error: ArtifactError, data: bytes) -> None:
    """Give a refusal that came before the manifest was trusted the plugin name and version
    the artifact's manifest claims (``claimed``: unverified), so that its rejection can be
    traced; nothing else is ever read from an untrusted manifest."""
    if error.plugin is not None:
        return
    try:
        manifest = read_manifest(data, ws.parse_sections(data))
    except ArtifactError:
        return  # no readable manifest: the file name alone names it
    error.plugin, error.version, error.claimed = manifest.name, manifest.version, True


def verify_artifact(
    data: bytes, *, detached: bytes | None, trust: TrustPolicy, mode: Mode, now: float
) -> VerifiedArtifact:
    """Verify ``data`` (the exact file bytes) and return what may be compiled.

    Raises an :class:`~forgeoned.errors.ArtifactError` subclass with a one-line message; a
    :class:`SignatureError` says why with a :class:`~forgeoned.errors.SignatureReason`.
    """
    sections = ws.parse_sections(data)
    digest = hashlib.sha256(data).hexdigest()
    try:
        keys = strict_signers(data, sections, detached, trust)
        manifest = read_manifest(data, sections)  # read only once its bytes are trusted
        signers = _authorised(manifest, keys, trust, now)
        _check_expiry(manifest, now)
    except SignatureError as exc:
        if mode is Mode.DEVELOPMENT and exc.why in DEV_TOLERATED:
            manifest = read_manifest(data, sections)
            return VerifiedArtifact(manifest, digest, data, (), False, exc.why)
        raise
    return VerifiedArtifact(manifest, digest, data, tuple(k.name for k in signers), True)
