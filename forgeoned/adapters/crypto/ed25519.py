"""Ed25519 with PyNaCl: the primitive behind ``core.signature``'s Ed25519 protocols."""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

SEED_LEN = 32
PUBLIC_LEN = 32


class NaclEd25519:
    """Verifies Ed25519 signatures (RFC 8032); never raises on a bad signature or key."""

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != PUBLIC_LEN:
            return False
        try:
            nacl.signing.VerifyKey(public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class SecretKey:
    """An Ed25519 signing key (the 32-byte seed) and its public key."""

    seed: bytes
    public_key: bytes
    _signing: nacl.signing.SigningKey = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> SecretKey:
        if len(seed) != SEED_LEN:
            raise ValueError(f"an Ed25519 seed is {SEED_LEN} bytes, got {len(seed)}")
        signing = nacl.signing.SigningKey(seed)
        return cls(seed, bytes(signing.verify_key), signing)

    @classmethod
    def generate(cls) -> SecretKey:
        return cls.from_seed(bytes(nacl.signing.SigningKey.generate()))

    def sign(self, message: bytes) -> bytes:
        return bytes(self._signing.sign(message).signature)
