"""Key files and the trust store.

Encodings (interoperable with wasmsign2):

* secret key ``NAME.key``: 65 bytes ``0x81 || seed32 || pk32`` (file mode 0600);
* public key ``NAME.pub``: 33 bytes ``0x01 || pk32`` (a PEM SPKI key is accepted here too);
* public key ``NAME.pem``: SPKI PEM (``-----BEGIN PUBLIC KEY-----``), what ``to_pem`` writes.

The trust store is a directory of ``*.pub`` / ``*.pem`` files; a key's name is its file name
without the suffix. Dotfiles and names with other suffixes are ignored. A key file that is a
symlink or not a regular file, or that cannot be read, is a :class:`ConfigError` naming it: a
trust store that is half loaded must not silently trust less (or more) than the operator
wrote. (Who owns the files and who may write them is checked before, by
``forgeoned.adapters.files.strict_modes``.)
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path
from typing import Final

from forgeoned.adapters.crypto.ed25519 import NaclEd25519, SecretKey
from forgeoned.adapters.files.projected import projected_file
from forgeoned.core.trust import (
    TrustedKey,
    TrustPolicy,
    TrustPolicyConfig,
    parse_trust_policy,
)
from forgeoned.errors import ConfigError

__all__ = [
    "generate_keypair",
    "load_public_key",
    "load_secret_key",
    "load_trust_dir",
    "parse_trust_policy",
    "public_key_bytes",
    "secret_key_bytes",
]

SECRET_TAG: Final = 0x81
PUBLIC_TAG: Final = 0x01
SPKI_ED25519_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
PEM_BEGIN: Final = b"-----BEGIN PUBLIC KEY-----"
PEM_END: Final = b"-----END PUBLIC KEY-----"
MAX_KEY_FILE: Final = 4096


def secret_key_bytes(key: SecretKey) -> bytes:
    return bytes((SECRET_TAG,)) + key.seed + key.public_key


def public_key_bytes(public_key: bytes) -> bytes:
    return bytes((PUBLIC_TAG,)) + public_key


def public_key_pem(public_key: bytes) -> bytes:
    body = base64.b64encode(SPKI_ED25519_PREFIX + public_key)
    return PEM_BEGIN + b"\n" + body + b"\n" + PEM_END + b"\n"


def _read_small(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_KEY_FILE:
        raise ConfigError(f"key file {path} is too large to be a key")
    return data


def decode_public_key(data: bytes, origin: str) -> bytes:
    """Raw 32-byte Ed25519 key from wasmsign2 raw (``0x01||pk``) or SPKI PEM bytes."""
    if len(data) == 33 and data[0] == PUBLIC_TAG:
        return data[1:]
    text = data.strip()
    if text.startswith(PEM_BEGIN) and text.endswith(PEM_END):
        try:
            der = base64.b64decode(
                b"".join(text[len(PEM_BEGIN) : -len(PEM_END)].split()), validate=True
            )
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{origin}: PEM body is not base64") from exc
        if len(der) == 44 and der.startswith(SPKI_ED25519_PREFIX):
            return der[len(SPKI_ED25519_PREFIX) :]
        raise ConfigError(f"{origin}: PEM key is not an Ed25519 SPKI public key")
    raise ConfigError(f"{origin}: not a public key (expected 0x01||pk32 or SPKI PEM)")


def load_public_key(path: Path) -> bytes:
    return decode_public_key(_read_small(path), str(path))


def load_secret_key(path: Path) -> SecretKey:
    """Read a wasmsign2 secret key file (``0x81 || seed || pk``) and check its halves agree."""
    data = _read_small(path)
    if len(data) != 65 or data[0] != SECRET_TAG:
        raise ConfigError(f"{path}: not a secret key (expected 65 bytes 0x81||seed||pk)")
    key = SecretKey.from_seed(data[1:33])
    if key.public_key != data[33:]:
        raise ConfigError(f"{path}: public half does not match the seed (corrupt key file)")
    return key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(out_dir: Path, name: str) -> tuple[Path, Path]:
    """Create ``out_dir/NAME.key`` (mode 0600) and ``out_dir/NAME.pub``; never overwrites."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"invalid key name {name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    secret_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if public_path.exists():
        raise ConfigError(f"{public_path} already exists; refusing to overwrite a key")
    key = SecretKey.generate()
    _write_new(secret_path, secret_key_bytes(key), 0o600)
    _write_new(public_path, public_key_bytes(key.public_key), 0o644)
    return secret_path, public_path


def _key_files(trust_dir: Path) -> list[tuple[str, Path]]:
    """(entry name, the regular file to read) of every key in ``trust_dir``."""
    try:
        entries = sorted(trust_dir.iterdir())
    except OSError as exc:
        raise ConfigError(f"cannot read trust dir {trust_dir}: {exc.strerror or exc}") from exc
    out = []
    for path in entries:
        if path.name.startswith(".") or path.suffix not in (".pub", ".pem"):
            continue
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue  # removed while we listed
        if stat.S_ISLNK(mode):
            real = projected_file(trust_dir, path.name)  # a Kubernetes ConfigMap volume
            if real is None:
                raise ConfigError(
                    f"trust dir key {path} is a symbolic link; links are never followed "
                    "(except a ConfigMap's NAME -> ..data/NAME)"
                )
            out.append((path.name, real))
            continue
        if not stat.S_ISREG(mode):
            raise ConfigError(f"trust dir key {path} is not a regular file")
        out.append((path.name, path))
    return out


def load_trust_dir(trust_dir: Path, config: TrustPolicyConfig | None = None) -> TrustPolicy:
    """Build the trust policy from the key files in ``trust_dir`` and the operator's config."""
    config = config or TrustPolicyConfig()
    keys: dict[str, TrustedKey] = {}
    seen: dict[bytes, str] = {}
    for entry, path in _key_files(trust_dir):
        name, public_key = Path(entry).stem, load_public_key(path)
        if name in keys or public_key in seen:
            other = name if name in keys else seen[public_key]
            raise ConfigError(f"trust dir {trust_dir}: {entry} duplicates key {other!r}")
        seen[public_key] = name
        scopes = config.scopes.get(name, ("*",))
        keys[name] = TrustedKey(name, public_key, scopes, config.expires.get(name))
    for table, named in (("scopes", config.scopes), ("expires", config.expires)):
        unknown = sorted(set(named) - set(keys))
        if unknown:
            raise ConfigError(f"trust.{table} names key {unknown[0]!r}, not found in {trust_dir}")
    return TrustPolicy(
        keys=tuple(keys.values()),
        ed25519=NaclEd25519(),
        revoked=config.revoked,
        thresholds=dict(config.thresholds),
    )
