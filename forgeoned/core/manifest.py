"""The plugin manifest (custom section ``forgeone.manifest``): its schema as values.

:class:`Manifest`, the :class:`Capabilities` a plugin asks for and the :class:`Limits` it runs
under, their JSON form, and the names and bounds every check of them uses (the manifest's
parser, :mod:`forgeoned.core.manifest_parse`; the operator's ceilings; the control API).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

import semver

from forgeoned.core.hooks_manifest import ConfigKey, MetricDecl
from forgeoned.core.origins import OriginPattern, intersect_all

ABI_VERSION: Final = 1
NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ENV_KEY_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SECRET_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_MANIFEST_BYTES: Final = 64 * 1024

WASM_PAGE: Final = 65536
MAX_MEMORY_BYTES: Final = 4 * 1024 * 1024 * 1024  # the wasm32 address space
MAX_FUEL: Final = 10**12
MAX_TIMEOUT_MS: Final = 10 * 60 * 1000
MAX_INSTANCES: Final = 64
MAX_KV_QUOTA: Final = 1024 * 1024 * 1024
MAX_TICK_MS: Final = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a plugin may call on the host. Empty means nothing."""

    log: bool = False
    clock: bool = False
    random: bool = False
    env: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    kv_quota_bytes: int | None = None  # None: no kv access at all
    # plugin metrics: a manifest asks by declaring [metrics]; a policy grants with metrics=true
    metrics: bool = False
    http: frozenset[OriginPattern] = frozenset()  # outbound origins (core/origins.py)

    def narrowed(self, policy: Capabilities) -> Capabilities:
        """The effective capabilities: this request intersected with the operator's policy."""
        quota: int | None = None
        if self.kv_quota_bytes is not None and policy.kv_quota_bytes is not None:
            quota = min(self.kv_quota_bytes, policy.kv_quota_bytes)
        return Capabilities(
            log=self.log and policy.log,
            clock=self.clock and policy.clock,
            random=self.random and policy.random,
            env=self.env & policy.env,
            secrets=self.secrets & policy.secrets,
            kv_quota_bytes=quota,
            metrics=self.metrics and policy.metrics,
            http=intersect_all(self.http, policy.http),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"log": self.log, "clock": self.clock, "random": self.random}
        out["env"] = sorted(self.env)
        out["secrets"] = sorted(self.secrets)
        if self.kv_quota_bytes is not None:
            out["kv"] = {"quota_bytes": self.kv_quota_bytes}
        if self.metrics:
            out["metrics"] = True
        if self.http:
            out["http"] = sorted(str(p) for p in self.http)
        return out


ALL_CAPABILITIES: Final = Capabilities(
    log=True, clock=True, random=True, env=frozenset(), secrets=frozenset(), kv_quota_bytes=None
)


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int = 16 * 1024 * 1024
    fuel_per_call: int = 100_000_000
    call_timeout_ms: int = 1000
    instances: int = 1

    def to_json(self) -> dict[str, int]:
        return {
            "memory_bytes": self.memory_bytes,
            "fuel_per_call": self.fuel_per_call,
            "call_timeout_ms": self.call_timeout_ms,
            "instances": self.instances,
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    version: str
    abi: int = ABI_VERSION
    capabilities: Capabilities = field(default_factory=Capabilities)
    limits: Limits = field(default_factory=Limits)
    tick_interval_ms: int = 0
    not_after: str | None = None  # RFC 3339 timestamp after which the signature is expired
    description: str = ""
    functions: tuple[str, ...] = ()  # named functions, callable like handle
    labels: tuple[tuple[str, str], ...] = ()  # sorted (name, value) pairs, for ABAC rules
    config: tuple[ConfigKey, ...] = ()
    metrics: tuple[MetricDecl, ...] = ()

    @property
    def semver(self) -> semver.Version:
        return semver.Version.parse(self.version)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "abi": self.abi,
            "capabilities": self.capabilities.to_json(),
            "limits": self.limits.to_json(),
            "tick_interval_ms": self.tick_interval_ms,
        }
        if self.not_after is not None:
            out["not_after"] = self.not_after
        if self.description:
            out["description"] = self.description
        if self.functions:
            out["functions"] = list(self.functions)
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.config:
            out["config"] = {k.name: k.to_json() for k in self.config}
        if self.metrics:
            out["metrics"] = {m.name: m.to_json() for m in self.metrics}
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
