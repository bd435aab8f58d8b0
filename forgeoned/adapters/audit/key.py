"""The daemon's own Ed25519 key that signs audit checkpoints (PyNaCl).

Generated on first start, kept 0600 in the state directory in the wasmsign2 secret-key layout
(``0x81 ‖ seed32 ‖ pk32``) with the public half beside it (``0x01 ‖ pk32``), so operators can
copy the public key somewhere safe and verify the log against it later.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nacl.exceptions
import nacl.signing

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.errors import AuditError

log = logging.getLogger("forgeoned.audit.key")
_SECRET_TAG = 0x81
_PUBLIC_TAG = 0x01


class CheckpointKey:
    """Signs checkpoint messages; ``public_hex`` identifies it inside the log."""

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._key = signing_key
        self.public_hex = bytes(signing_key.verify_key).hex()

    @classmethod
    def generate(cls) -> CheckpointKey:
        return cls(nacl.signing.SigningKey.generate())

    def save(self, path: Path) -> None:
        """Write the secret key (0600) to ``path`` and its public half beside it."""
        public = bytes(self._key.verify_key)
        atomic_write(path, bytes([_SECRET_TAG]) + bytes(self._key) + public, mode=0o600)
        atomic_write(public_path(path), bytes([_PUBLIC_TAG]) + public, mode=0o644)

    @classmethod
    def load_or_create(cls, path: Path) -> CheckpointKey:
        """Read the key at ``path``; create it (0600) and ``path.pub`` if it does not exist."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            made = cls.generate()
            made.save(path)
            # In the journal at first start: a copy of the key outside the state directory.
            log.warning(
                "created the audit checkpoint key %s (%s); pin a copy of it outside the state "
                "directory to verify the log against",
                made.public_hex,
                public_path(path),
            )
            return made
        except OSError as exc:
            raise AuditError(f"cannot read audit key {path}: {exc.strerror or exc}") from exc
        if len(raw) != 65 or raw[0] != _SECRET_TAG:
            raise AuditError(f"audit key {path} is not a 65-byte Ed25519 secret key")
        key = nacl.signing.SigningKey(raw[1:33])
        if bytes(key.verify_key) != raw[33:]:
            raise AuditError(f"audit key {path}: public half does not match the seed")
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return cls(key)

    def sign(self, message: bytes) -> str:
        return bytes(self._key.sign(message).signature).hex()


def pending_path(secret_path: Path) -> Path:
    """Where a rotation keeps the new key until its handover is on disk."""
    return secret_path.with_name(secret_path.name + ".new")


def public_path(secret_path: Path) -> Path:
    name = secret_path.name
    if name.endswith(".key.new"):
        return secret_path.with_name(name.removesuffix(".key.new") + ".pub.new")
    return secret_path.with_name(name.removesuffix(".key") + ".pub")


def public_bytes(public_hex: str) -> bytes:
    """The ``.pub`` file content (``0x01 ‖ pk32``) of a hex public key."""
    return bytes([_PUBLIC_TAG]) + bytes.fromhex(public_hex)


def read_public(path: Path) -> str:
    """The hex public key stored in a ``.pub`` file (``0x01 ‖ pk32``) or as 64 hex chars."""
    raw = path.read_bytes()
    if len(raw) == 33 and raw[0] == _PUBLIC_TAG:
        return raw[1:].hex()
    text = raw.decode(errors="replace").strip()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower()):
        return text.lower()
    raise AuditError(f"{path} is not an Ed25519 public key")


def check_signature(message: bytes, signature: bytes, public_hex: str) -> bool:
    """A :data:`forgeoned.core.audit_chain.SignatureCheck` backed by PyNaCl."""
    try:
        nacl.signing.VerifyKey(bytes.fromhex(public_hex)).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    except nacl.exceptions.TypeError:
        return False
    return True
