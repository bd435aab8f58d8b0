"""forgeonectl commands for artifacts: ``package``, ``sign`` (keys: ``cli.keys``; ``verify``
and ``check``: ``cli.check``).

``package`` takes a wasm binary or WAT text (``.wat``, compiled with wasmtime's ``wat2wasm``).

These work offline on files; they never talk to the daemon.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

from forgeoned.adapters.crypto.keys import load_secret_key
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.cli.exitcodes import OK
from forgeoned.core import signature as sig
from forgeoned.core.manifest import MAX_MANIFEST_BYTES
from forgeoned.core.manifest_parse import parse_manifest_obj
from forgeoned.core.manifest_section import with_manifest
from forgeoned.core.trust import TrustPolicyConfig, parse_trust_policy
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.errors import ConfigError, ForgeonedError, MalformedModuleError, ManifestError


def read_file(path: Path, cap: int = MAX_MODULE_BYTES) -> bytes:
    """Read a whole file once, at most ``cap + 1`` bytes (so a caller sees that it is over the
    cap); a missing or unreadable file is a one-line error."""
    try:
        with path.open("rb") as handle:
            return handle.read(cap + 1)
    except OSError as exc:
        raise ForgeonedError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _jsonable(value: Any) -> Any:
    """TOML datetimes (e.g. ``not_after = 2027-01-01T00:00:00Z``) become RFC 3339 strings."""
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def load_manifest_file(path: Path) -> dict[str, Any]:
    """A manifest object from a ``.toml`` or ``.json`` file (validated later by the schema)."""
    data = read_file(path, MAX_MANIFEST_BYTES)
    try:
        if path.suffix == ".toml":
            return dict(_jsonable(tomllib.loads(data.decode("utf-8"))))
        if path.suffix == ".json":
            raw = json.loads(data.decode("utf-8"))
            if not isinstance(raw, dict):
                raise ManifestError(f"{path}: manifest must be a JSON object")
            return raw
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    raise ManifestError(f"{path}: manifest must be a .toml or .json file")


WASM_MAGIC = b"\0asm"


def module_bytes(path: Path) -> bytes:
    """A module's binary from ``path``: a ``.wasm`` file as it is, or WAT text (a ``.wat``
    file, or any file that does not start with the wasm magic) compiled by wasmtime."""
    data = read_file(path)
    if data.startswith(WASM_MAGIC) and path.suffix != ".wat":
        return data
    import wasmtime

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedModuleError(f"{path}: neither a wasm binary nor WAT text") from exc
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        where = next((line for line in lines if line.startswith("-->")), "")
        first = lines[0] if lines else "invalid"
        raise MalformedModuleError(f"{path}: not valid WAT: {first} {where}".rstrip()) from exc


def validate_wasm(module: bytes) -> None:
    """Let wasmtime check the module really is valid WebAssembly before we package it."""
    import wasmtime

    try:
        wasmtime.Module.validate(wasmtime.Engine(), module)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise MalformedModuleError(f"not a valid WebAssembly module: {first}") from exc


def write_output(path: Path, data: bytes) -> None:
    atomic_write(path, data, mode=0o644)


def _package(args: argparse.Namespace) -> int:
    module = module_bytes(Path(args.module))
    manifest = parse_manifest_obj(load_manifest_file(Path(args.manifest)))
    packaged = with_manifest(module, manifest)
    validate_wasm(packaged)
    write_output(Path(args.output), packaged)
    print(f"packaged {manifest.name} {manifest.version} into {args.output}")
    return OK


def _sign(args: argparse.Namespace) -> int:
    key = load_secret_key(Path(args.key))
    source, output = Path(args.input), Path(args.output)
    data = read_file(source)
    existing_sig = Path(f"{source}.sig")
    detached = read_file(existing_sig) if args.detached and existing_sig.is_file() else None
    module, payload = sig.sign_module(data, key, detached_payload=detached)
    if args.detached:
        write_output(output, module)
        write_output(Path(f"{output}.sig"), payload)
        print(f"signed {output} (detached signature {output}.sig)")
    else:
        write_output(output, sig.embed(module, payload))
        print(f"signed {output}")
    return OK


def trust_config(path: str | None) -> TrustPolicyConfig:
    if path is None:
        return TrustPolicyConfig()
    try:
        raw = tomllib.loads(read_file(Path(path)).decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_trust_policy(raw.get("trust"))


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's commands to ``sub``."""
    pkg = sub.add_parser("package", help="embed a manifest (.toml or .json) into a module")
    pkg.add_argument("module", metavar="MODULE.wasm", help="a wasm binary or WAT text (.wat)")
    pkg.add_argument("--manifest", required=True, metavar="FILE")
    pkg.add_argument("-o", "--output", required=True, metavar="OUT.wasm")
    pkg.set_defaults(func=_package)

    sign = sub.add_parser("sign", help="sign a packaged module (adds a signer if signed)")
    sign.add_argument("--key", required=True, metavar="KEY", help="wasmsign2 secret key file")
    sign.add_argument("input", metavar="IN.wasm")
    sign.add_argument("-o", "--output", required=True, metavar="OUT.wasm")
    sign.add_argument("--detached", action="store_true", help="write OUT.wasm.sig instead")
    sign.set_defaults(func=_sign)
