"""Operator ceilings: the most a signed manifest may ask for, daemon-wide and per plugin.

A manifest's ``limits`` are the plugin author's request; the ``[limits]`` table of the daemon
config is the operator's answer. A manifest that asks for more than a ceiling is *rejected*
(``LimitExceededError``, code ``over_ceiling``), not clamped: a plugin written for 64
instances or 10-minute calls may be wrong with fewer, and a rejection is audited and visible
(``plugin.rejected``, ``forgeone_rejected_artifacts_total{reason="over_ceiling"}``) while the
running version keeps serving. Ceilings are unset (no cap beyond the manifest schema's own
bounds) unless the operator writes them::

    [limits]                          # daemon-wide
    memory_bytes = 268435456          # linear memory per instance
    instances = 8
    fuel_per_call = 1000000000
    call_timeout_ms = 30000
    code_bytes = 67108864             # compiled native code of one module
    [limits.plugins.billing]          # per plugin: replaces the daemon-wide value of each key
    memory_bytes = 1073741824         # it sets (so one plugin may get more, or less)

``code_bytes`` is known only once the module is compiled (the serialized native code, from
the compile worker or the cache): :func:`check_code_size` runs there, the others at
verification (:func:`check_manifest`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from forgeoned.core.manifest import (
    MAX_FUEL,
    MAX_INSTANCES,
    MAX_MEMORY_BYTES,
    MAX_TIMEOUT_MS,
    NAME_RE,
    WASM_PAGE,
    Manifest,
)
from forgeoned.errors import ConfigError, LimitExceededError


class Limit(enum.Enum):
    """A capped quantity; the value is its key in ``[limits]`` and in the manifest."""

    MEMORY_BYTES = "memory_bytes"
    INSTANCES = "instances"
    FUEL_PER_CALL = "fuel_per_call"
    CALL_TIMEOUT_MS = "call_timeout_ms"
    CODE_BYTES = "code_bytes"


# The range a ceiling may be set to: a manifest can never ask beyond the upper bound anyway.
_RANGE: Final = {
    Limit.MEMORY_BYTES: (WASM_PAGE, MAX_MEMORY_BYTES),
    Limit.INSTANCES: (1, MAX_INSTANCES),
    Limit.FUEL_PER_CALL: (1000, MAX_FUEL),
    Limit.CALL_TIMEOUT_MS: (1, MAX_TIMEOUT_MS),
    Limit.CODE_BYTES: (1, 1 << 40),
}


@dataclass(frozen=True, slots=True)
class Ceilings:
    """One set of ceilings; None means "not capped here"."""

    memory_bytes: int | None = None
    instances: int | None = None
    fuel_per_call: int | None = None
    call_timeout_ms: int | None = None
    code_bytes: int | None = None

    def get(self, limit: Limit) -> int | None:
        value: int | None = getattr(self, limit.value)
        return value


@dataclass(frozen=True, slots=True)
class CeilingPolicy:
    """The daemon-wide ceilings and the per-plugin ones that replace them key by key."""

    default: Ceilings = field(default_factory=Ceilings)
    plugins: Mapping[str, Ceilings] = field(default_factory=dict)

    def ceiling(self, plugin: str, limit: Limit) -> tuple[int | None, str]:
        """The ceiling on ``limit`` for ``plugin`` and the config key that set it."""
        own = self.plugins.get(plugin)
        if own is not None and own.get(limit) is not None:
            return own.get(limit), f"limits.plugins.{plugin}.{limit.value}"
        return self.default.get(limit), f"limits.{limit.value}"


def _over(
    policy: CeilingPolicy, plugin: str, version: str | None, asked: Mapping[Limit, int]
) -> None:
    problems = []
    for limit, value in asked.items():
        ceiling, key = policy.ceiling(plugin, limit)
        if ceiling is not None and value > ceiling:
            problems.append(f"{limit.value} = {value} is over the ceiling {ceiling} ({key})")
    if problems:
        message = f"plugin {plugin!r}: " + "; ".join(problems)
        raise LimitExceededError(message, plugin=plugin, version=version)


def check_manifest(policy: CeilingPolicy, manifest: Manifest) -> None:
    """Raise :class:`LimitExceededError` naming every limit ``manifest`` asks above a ceiling."""
    limits = manifest.limits
    asked = {
        Limit.MEMORY_BYTES: limits.memory_bytes,
        Limit.INSTANCES: limits.instances,
        Limit.FUEL_PER_CALL: limits.fuel_per_call,
        Limit.CALL_TIMEOUT_MS: limits.call_timeout_ms,
    }
    _over(policy, manifest.name, manifest.version, asked)


def check_code_size(policy: CeilingPolicy, manifest: Manifest, code_bytes: int) -> None:
    """Raise :class:`LimitExceededError` if the plugin's compiled code is over its ceiling."""
    _over(policy, manifest.name, manifest.version, {Limit.CODE_BYTES: code_bytes})


def _ceilings(raw: Any, where: str) -> Ceilings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    known = {f.name for f in fields(Ceilings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key")
    values: dict[str, int] = {}
    for limit in Limit:
        if limit.value not in raw:
            continue
        value, (lo, hi) = raw[limit.value], _RANGE[limit]
        key = f"{where}.{limit.value}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is outside {lo}..{hi}")
        values[limit.value] = value
    return Ceilings(**values)


def parse_ceilings(raw: Any) -> CeilingPolicy:
    """Validate the ``[limits]`` table; every :class:`ConfigError` names the key."""
    if raw is None:
        return CeilingPolicy()
    if not isinstance(raw, Mapping):
        raise ConfigError("limits: must be a table")
    per_plugin = raw.get("plugins", {})
    if not isinstance(per_plugin, Mapping):
        raise ConfigError("limits.plugins: must be a table of plugin name -> ceilings")
    plugins: dict[str, Ceilings] = {}
    for name, table in per_plugin.items():
        if not NAME_RE.match(name):
            raise ConfigError(f"limits.plugins.{name}: not a plugin name")
        plugins[name] = _ceilings(table, f"limits.plugins.{name}")
    default = _ceilings({k: v for k, v in raw.items() if k != "plugins"}, "limits")
    return CeilingPolicy(default, plugins)
