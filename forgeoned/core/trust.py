"""Trust policy: which keys may sign which plugins, revocations, thresholds, and the mode.

The operator writes the policy as the ``[trust]`` table of the daemon's TOML config (parsed by
:func:`parse_trust_policy`); the keys themselves are files in ``trust_dir`` (read by
``forgeoned.adapters.crypto.keys.load_trust_dir``, which combines both into a :class:`TrustPolicy`).
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.signature import Ed25519Verifier, default_key_id
from forgeoned.errors import ConfigError

_HEX_KEY: Final = re.compile(r"^(01)?[0-9a-fA-F]{64}$")
_GLOB: Final = re.compile(r"^[a-z0-9.*?\[\]!_-]{1,64}$")
MAX_THRESHOLD: Final = 64


class Mode(enum.Enum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"
    STAGING = "staging"  # production rules, plus the evidence `forgeonectl promote` signs


@dataclass(frozen=True, slots=True)
class TrustPolicyConfig:
    """The operator's policy, independent of which key files exist."""

    revoked: frozenset[bytes] = frozenset()  # raw 32-byte public keys
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # key name -> globs
    thresholds: Mapping[str, int] = field(default_factory=dict)  # plugin name/glob -> k
    expires: Mapping[str, float] = field(default_factory=dict)  # key name -> Unix time


def fingerprint(public_key: bytes) -> str:
    """``SHA256:`` and the unpadded base64 of the raw key's SHA-256, as OpenSSH prints keys."""
    digest = base64.b64encode(hashlib.sha256(public_key).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def utc_text(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TrustedKey:
    name: str  # file name without suffix, e.g. "ops" for ops.pub
    public_key: bytes  # raw 32 bytes
    scopes: tuple[str, ...] = ("*",)
    not_after: float | None = None  # Unix time after which its signatures no longer count

    @property
    def key_id(self) -> bytes:
        return default_key_id(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def may_sign(self, plugin: str) -> bool:
        return any(fnmatch.fnmatchcase(plugin, glob) for glob in self.scopes)

    def expired(self, now: float) -> bool:
        return self.not_after is not None and now > self.not_after

    def describe(self) -> dict[str, Any]:
        """What ``forgeonectl keys list`` and a reload's answer show of a trusted key."""
        return {
            "name": self.name,
            "key_id": self.key_id.hex(),
            "fingerprint": self.fingerprint,
            "public_key": self.public_key.hex(),
            "scopes": list(self.scopes),
            "not_after": utc_text(self.not_after) if self.not_after is not None else None,
        }


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Trusted keys, revoked keys and thresholds, plus the Ed25519 primitive to check them."""

    keys: tuple[TrustedKey, ...]
    ed25519: Ed25519Verifier
    revoked: frozenset[bytes] = frozenset()
    thresholds: Mapping[str, int] = field(default_factory=dict)

    def threshold(self, plugin: str) -> int:
        """How many distinct trusted keys must sign ``plugin`` (the largest matching rule)."""
        matches = [k for glob, k in self.thresholds.items() if fnmatch.fnmatchcase(plugin, glob)]
        return max(matches, default=1)

    def candidates(self) -> dict[bytes, bytes]:
        """Every key whose signature is worth checking (trusted or revoked) -> its key id."""
        out = {key.public_key: key.key_id for key in self.keys}
        out.update({pk: default_key_id(pk) for pk in self.revoked})
        return out

    def by_public_key(self, public_key: bytes) -> TrustedKey | None:
        if public_key in self.revoked:
            return None
        return next((k for k in self.keys if k.public_key == public_key), None)


def parse_mode(raw: Any) -> Mode:
    try:
        return Mode(raw)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in Mode)
        raise ConfigError(f"mode must be one of {choices}, got {raw!r}") from None


def key_name(entry: str) -> str:
    """Normalise a key reference from the config: ``ops.pub``/``ops.pem``/``ops`` -> ``ops``."""
    for suffix in (".pub", ".pem"):
        if entry.endswith(suffix):
            return entry[: -len(suffix)]
    return entry


def parse_public_key_hex(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX_KEY.match(value):
        raise ConfigError(f"{where}: {value!r} is not a hex Ed25519 public key (64 hex digits)")
    return bytes.fromhex(value[-64:])


def parse_trust_policy(raw: Any) -> TrustPolicyConfig:
    """Validate the ``[trust]`` table of the config; every error names the key.

    Keys (all optional)::

        [trust]
        revoked = ["<64 hex digits: raw Ed25519 public key>", ...]   # never trusted again
        [trust.scopes]            # key file (with or without .pub/.pem) -> plugin-name globs
        "ops.pub" = ["billing-*", "audit"]                            # default: ["*"]
        [trust.thresholds]        # plugin name or glob -> distinct trusted signers needed
        "payments" = 2                                                # default: 1
        [trust.expires]           # key file -> the time after which it signs nothing
        "ops.pub" = 2027-01-01T00:00:00Z                              # default: never

    A revoked key is matched by its raw public key, not by file name or key id, so renaming or
    re-encoding the key file does not bring it back.
    """
    if raw is None:
        return TrustPolicyConfig()
    if not isinstance(raw, dict):
        raise ConfigError("[trust] must be a table")
    unknown = sorted(set(raw) - {"revoked", "scopes", "thresholds", "expires"})
    if unknown:
        raise ConfigError(f"trust.{unknown[0]}: unknown key")
    revoked_raw = raw.get("revoked", [])
    if not isinstance(revoked_raw, list):
        raise ConfigError("trust.revoked must be a list of hex public keys")
    revoked = frozenset(parse_public_key_hex(v, "trust.revoked") for v in revoked_raw)
    return TrustPolicyConfig(
        revoked=revoked,
        scopes=_parse_scopes(raw.get("scopes", {})),
        thresholds=_parse_thresholds(raw.get("thresholds", {})),
        expires=_parse_expires(raw.get("expires", {})),
    )


def _parse_expires(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ConfigError("trust.expires must be a table of key name -> date and time")
    expires: dict[str, float] = {}
    for entry, written in raw.items():
        where = f"trust.expires.{entry}"
        value = written
        if isinstance(written, str):
            try:
                value = dt.datetime.fromisoformat(written)
            except ValueError:
                raise ConfigError(
                    f"{where}: {written!r} is not an RFC 3339 date and time"
                ) from None
        if not isinstance(value, dt.datetime):
            raise ConfigError(f"{where} must be a date and time like 2027-01-01T00:00:00Z")
        if value.tzinfo is None:
            raise ConfigError(f"{where}: {value.isoformat()} has no UTC offset (add Z)")
        expires[key_name(str(entry))] = value.timestamp()
    return expires


def _parse_scopes(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError("trust.scopes must be a table of key name -> list of globs")
    scopes: dict[str, tuple[str, ...]] = {}
    for entry, globs in raw.items():
        where = f"trust.scopes.{entry}"
        if not isinstance(globs, list) or not globs:
            raise ConfigError(f"{where} must be a non-empty list of plugin-name globs")
        for glob in globs:
            if not isinstance(glob, str) or not _GLOB.match(glob):
                raise ConfigError(f"{where}: {glob!r} is not a plugin-name glob")
        scopes[key_name(str(entry))] = tuple(globs)
    return scopes


def _parse_thresholds(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise ConfigError("trust.thresholds must be a table of plugin name -> count")
    thresholds: dict[str, int] = {}
    for plugin, count in raw.items():
        where = f"trust.thresholds.{plugin}"
        if not isinstance(plugin, str) or not _GLOB.match(plugin):
            raise ConfigError(f"{where}: not a plugin name or glob")
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"{where} must be an integer")
        if not 1 <= count <= MAX_THRESHOLD:
            raise ConfigError(f"{where} = {count} is outside 1..{MAX_THRESHOLD}")
        thresholds[plugin] = count
    return thresholds
