"""Strict validation of a ``forgeone.manifest`` payload into a :class:`Manifest`.

Validation is strict on purpose: an unknown key, a wrong type or an absurd limit is an error
that names the field, because a manifest is an operator's only description of what a plugin
will be allowed to do. The schema itself (values, names, bounds) is
:mod:`forgeoned.core.manifest`.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

import semver

from forgeoned.core.hooks_manifest import (
    parse_config_keys,
    parse_functions,
    parse_labels,
    parse_metrics,
)
from forgeoned.core.manifest import (
    ABI_VERSION,
    ENV_KEY_RE,
    MAX_FUEL,
    MAX_INSTANCES,
    MAX_KV_QUOTA,
    MAX_MANIFEST_BYTES,
    MAX_MEMORY_BYTES,
    MAX_TICK_MS,
    MAX_TIMEOUT_MS,
    NAME_RE,
    SECRET_RE,
    WASM_PAGE,
    Capabilities,
    Limits,
    Manifest,
)
from forgeoned.core.origins import parse_origin_patterns
from forgeoned.errors import ManifestError

_TOP_KEYS: Final = frozenset(
    {
        "name",
        "version",
        "abi",
        "capabilities",
        "limits",
        "tick_interval_ms",
        "not_after",
        "description",
        "functions",
        "labels",
        "config",
        "metrics",
    }
)
_CAP_KEYS: Final = frozenset({"log", "clock", "random", "env", "secrets", "kv", "metrics", "http"})
_LIMIT_KEYS: Final = frozenset({"memory_bytes", "fuel_per_call", "call_timeout_ms", "instances"})


def _fail(field_name: str, problem: str) -> ManifestError:
    return ManifestError(f"manifest field {field_name!r}: {problem}")


def _check_keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _fail(f"{where}{unknown[0]}", "unknown field")


def _int(obj: dict[str, Any], key: str, where: str, lo: int, hi: int, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where + key, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise _fail(where + key, f"{value} is outside {lo}..{hi}")
    return value


def _bool(obj: dict[str, Any], key: str, where: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise _fail(where + key, "must be true or false")
    return value


def _names(obj: dict[str, Any], key: str, pattern: re.Pattern[str]) -> frozenset[str]:
    value = obj.get(key, [])
    if not isinstance(value, list) or len(value) > 256:
        raise _fail("capabilities." + key, "must be a list of at most 256 names")
    for item in value:
        if not isinstance(item, str) or not pattern.match(item):
            raise _fail("capabilities." + key, f"invalid name {item!r}")
    return frozenset(value)


def parse_capabilities(raw: Any) -> Capabilities:
    if not isinstance(raw, dict):
        raise _fail("capabilities", "must be an object")
    _check_keys(raw, _CAP_KEYS, "capabilities.")
    quota: int | None = None
    if "kv" in raw:
        kv = raw["kv"]
        if kv is False:
            quota = None
        elif not isinstance(kv, dict):
            raise _fail("capabilities.kv", 'must be an object like {"quota_bytes": 65536}')
        else:
            _check_keys(kv, frozenset({"quota_bytes"}), "capabilities.kv.")
            quota = _int(kv, "quota_bytes", "capabilities.kv.", 0, MAX_KV_QUOTA, 65536)
    try:
        http = parse_origin_patterns(raw.get("http", []))
    except ValueError as exc:
        raise _fail("capabilities.http", str(exc)) from None
    return Capabilities(
        log=_bool(raw, "log", "capabilities."),
        clock=_bool(raw, "clock", "capabilities."),
        random=_bool(raw, "random", "capabilities."),
        env=_names(raw, "env", ENV_KEY_RE),
        secrets=_names(raw, "secrets", SECRET_RE),
        kv_quota_bytes=quota,
        metrics=_bool(raw, "metrics", "capabilities."),
        http=http,
    )


def parse_limits(raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise _fail("limits", "must be an object")
    _check_keys(raw, _LIMIT_KEYS, "limits.")
    d = Limits()
    memory = _int(raw, "memory_bytes", "limits.", WASM_PAGE, MAX_MEMORY_BYTES, d.memory_bytes)
    return Limits(
        memory_bytes=memory,
        fuel_per_call=_int(raw, "fuel_per_call", "limits.", 1000, MAX_FUEL, d.fuel_per_call),
        call_timeout_ms=_int(
            raw, "call_timeout_ms", "limits.", 1, MAX_TIMEOUT_MS, d.call_timeout_ms
        ),
        instances=_int(raw, "instances", "limits.", 1, MAX_INSTANCES, d.instances),
    )


def parse_rfc3339(value: Any, field_name: str = "not_after") -> float:
    """Seconds since the epoch of an RFC 3339 timestamp with an explicit offset (or ``Z``)."""
    if not isinstance(value, str) or len(value) > 64:
        raise _fail(field_name, "must be an RFC 3339 timestamp string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(field_name, f"{value!r} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        raise _fail(field_name, f"{value!r} has no UTC offset (add Z or +00:00)")
    return moment.timestamp()


def parse_manifest_obj(raw: Any) -> Manifest:
    """Validate a decoded manifest object; every error names the offending field."""
    if not isinstance(raw, dict):
        raise ManifestError("manifest must be a JSON object")
    _check_keys(raw, _TOP_KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _fail("name", f"{name!r} does not match {NAME_RE.pattern}")
    version = raw.get("version")
    if not isinstance(version, str) or not semver.Version.is_valid(version):
        raise _fail("version", f"{version!r} is not a semantic version (2.0)")
    abi = raw.get("abi")
    if abi != ABI_VERSION or isinstance(abi, bool):
        raise _fail("abi", f"{abi!r} is not supported (this host speaks ABI {ABI_VERSION})")
    not_after = raw.get("not_after")
    if not_after is not None:
        parse_rfc3339(not_after)
    description = raw.get("description", "")
    if not isinstance(description, str) or len(description) > 1024:
        raise _fail("description", "must be a string of at most 1024 characters")
    metrics = parse_metrics(raw.get("metrics", {}))
    caps = parse_capabilities(raw.get("capabilities", {}))
    if metrics and not caps.metrics:  # declaring metrics is the request
        caps = replace(caps, metrics=True)
    return Manifest(
        name=name,
        version=version,
        abi=ABI_VERSION,
        capabilities=caps,
        limits=parse_limits(raw.get("limits", {})),
        tick_interval_ms=_int(raw, "tick_interval_ms", "", 0, MAX_TICK_MS, 0),
        not_after=not_after,
        description=description,
        functions=parse_functions(raw.get("functions", [])),
        labels=parse_labels(raw.get("labels", {})),
        config=parse_config_keys(raw.get("config", {})),
        metrics=metrics,
    )


def parse_manifest(data: bytes) -> Manifest:
    """Parse the UTF-8 JSON payload of a ``forgeone.manifest`` section."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES} cap")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest is not valid UTF-8 JSON: {exc}") from exc
    return parse_manifest_obj(raw)
