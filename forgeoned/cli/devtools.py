"""Developer helpers: build the signed sample plugin, and make signed plugins in tests.

``python -m forgeoned.cli.devtools sample --wasm PATH --keys DIR --out DIR`` (run by
``make plugins``) creates the dev key pair ``DIR/dev.key`` + ``DIR/dev.pub`` if absent,
packages the built Rust sample with ``examples/sample-plugin/manifest.toml``, signs it and
writes ``OUT/sample.wasm`` atomically, only when its bytes changed.

For tests (any engineer's)::

    from forgeoned.cli.devtools import make_signed_plugin, test_key, trust_policy_for
    key = test_key(1)
    data = make_signed_plugin('(module (memory (export "memory") 1) ...)',
                              {"name": "hello", "version": "1.0.0", "abi": 1}, key)
    policy = trust_policy_for(key)             # a TrustPolicy trusting exactly that key
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forgeoned.adapters.crypto.ed25519 import NaclEd25519, SecretKey
from forgeoned.adapters.crypto.keys import generate_keypair, load_secret_key
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.core import signature as sig
from forgeoned.core.manifest import Manifest
from forgeoned.core.manifest_parse import parse_manifest_obj
from forgeoned.core.manifest_section import with_manifest
from forgeoned.core.trust import TrustedKey, TrustPolicy
from forgeoned.errors import ForgeonedError

SAMPLE_MANIFEST = Path(__file__).resolve().parents[2] / "examples/sample-plugin/manifest.toml"


def test_key(number: int = 0) -> SecretKey:
    """A deterministic key for tests only (seed = 32 x ``number``); never use it for real."""
    return SecretKey.from_seed(bytes([number % 256]) * 32)


test_key.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def to_wasm(wat_or_wasm: str | bytes) -> bytes:
    """Binary wasm from WAT text (via wasmtime) or from bytes that already are wasm."""
    if isinstance(wat_or_wasm, bytes):
        return wat_or_wasm
    import wasmtime

    return bytes(wasmtime.wat2wasm(wat_or_wasm))


def package_plugin(wat_or_wasm: str | bytes, manifest: Mapping[str, Any] | Manifest) -> bytes:
    """An unsigned module carrying ``manifest`` (validated) in its manifest section."""
    parsed = manifest if isinstance(manifest, Manifest) else parse_manifest_obj(dict(manifest))
    return with_manifest(to_wasm(wat_or_wasm), parsed)


def sign_bytes(data: bytes, key: SecretKey) -> bytes:
    """``data`` with ``key``'s signature embedded (added as a second signer if signed)."""
    module, payload = sig.sign_module(data, key)
    return sig.embed(module, payload)


def make_signed_plugin(
    wat_or_wasm: str | bytes, manifest: Mapping[str, Any] | Manifest, key: SecretKey
) -> bytes:
    """Package and sign in one call: the bytes of a ready-to-load artifact."""
    return sign_bytes(package_plugin(wat_or_wasm, manifest), key)


def trust_policy_for(*keys: SecretKey, **options: Any) -> TrustPolicy:
    """A policy trusting ``keys`` (named ``key0``, ``key1``…); ``options`` go to TrustPolicy."""
    trusted = tuple(TrustedKey(f"key{i}", k.public_key) for i, k in enumerate(keys))
    return TrustPolicy(keys=trusted, ed25519=NaclEd25519(), **options)


def build_sample(wasm: Path, keys_dir: Path, out_dir: Path, manifest: Path) -> Path:
    """Package + sign the Rust sample into ``out_dir/sample.wasm``; idempotent."""
    from forgeoned.cli.artifacts import load_manifest_file, read_file

    key_path = keys_dir / "dev.key"
    if not key_path.exists():
        generate_keypair(keys_dir, "dev")
    key = load_secret_key(key_path)
    packaged = package_plugin(read_file(wasm), load_manifest_file(manifest))
    signed = sign_bytes(packaged, key)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "sample.wasm"
    if not (target.is_file() and target.read_bytes() == signed):
        atomic_write(target, signed, mode=0o644)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forgeoned.cli.devtools")
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="package and sign the Rust sample plugin")
    sample.add_argument("--wasm", required=True, type=Path)
    sample.add_argument("--keys", required=True, type=Path)
    sample.add_argument("--out", required=True, type=Path)
    sample.add_argument("--manifest", type=Path, default=SAMPLE_MANIFEST)
    args = parser.parse_args(argv)
    try:
        target = build_sample(args.wasm, args.keys, args.out, args.manifest)
    except ForgeonedError as exc:
        print(f"devtools: {exc}", file=sys.stderr)
        return 1
    print(f"sample plugin: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
