"""The operator's outbound-HTTP grants: the ``[http]`` table of the daemon config.

Nothing is granted unless written, per plugin, in the style of ``[limits.plugins.NAME]``::

    [http]
    ca_file = "/etc/ssl/certs/ca-certificates.crt"   # optional: else the system CAs
    [http.plugins.billing]
    allow = ["https://api.example.com:443", "http://*.svc.example:8080"]
    allow_cidrs = []              # explicit exceptions to the address rules (core/netrules)
    follow_redirects = false
    max_request_bytes = 1048576
    max_response_bytes = 1048576
    timeout_ms = 10000            # also bounded by what is left of the wasm call's deadline
    max_concurrent = 4
    [http.plugins.billing.credentials]
    api-token = ["api.example.com"]   # {{secret:api-token}} is substituted only for these hosts

The plugin may reach an origin only if it matches both its manifest's ``capabilities.http``
and ``allow`` (``core/origins.intersect_all``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.manifest import NAME_RE, SECRET_RE
from forgeoned.core.netrules import AddressRules, Network, parse_cidrs
from forgeoned.core.origins import HostPattern, OriginPattern, parse_host_pattern
from forgeoned.core.origins import parse_origin_patterns as _origins
from forgeoned.errors import ConfigError

MAX_BODY_BYTES: Final = 32 << 20
MAX_HOPS: Final = 5
_KEYS: Final = frozenset(
    {
        "allow",
        "allow_cidrs",
        "follow_redirects",
        "max_request_bytes",
        "max_response_bytes",
        "timeout_ms",
        "max_concurrent",
        "credentials",
    }
)


@dataclass(frozen=True, slots=True)
class HttpGrant:
    """What the operator grants one plugin (with the defaults of an empty table)."""

    allow: frozenset[OriginPattern] = frozenset()
    allow_cidrs: tuple[Network, ...] = ()
    follow_redirects: bool = False
    max_request_bytes: int = 1 << 20
    max_response_bytes: int = 1 << 20
    timeout_ms: int = 10_000
    max_concurrent: int = 4
    credentials: Mapping[str, tuple[HostPattern, ...]] = field(default_factory=dict)

    @property
    def rules(self) -> AddressRules:
        return AddressRules(self.allow_cidrs)

    def credential_bound(self, name: str, host: str) -> bool:
        return any(p.matches(host) for p in self.credentials.get(name, ()))


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    ca_file: str | None = None  # relative paths are resolved by the config loader
    plugins: Mapping[str, HttpGrant] = field(default_factory=dict)

    def grant_for(self, plugin: str) -> HttpGrant | None:
        return self.plugins.get(plugin)


def _int(raw: Mapping[str, Any], key: str, where: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}: must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}: {value} is outside {lo}..{hi}")
    return value


def _credentials(raw: Any, where: str) -> dict[str, tuple[HostPattern, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table of credential name -> [hosts]")
    out = {}
    for name, hosts in raw.items():
        if not SECRET_RE.match(name):
            raise ConfigError(f"{where}.{name}: not a credential name")
        if not isinstance(hosts, list) or not hosts:
            raise ConfigError(f"{where}.{name}: must be a non-empty list of host names")
        try:
            out[name] = tuple(parse_host_pattern(h) for h in hosts)
        except ValueError as exc:
            raise ConfigError(f"{where}.{name}: {exc}") from None
    return out


def _grant(raw: Any, where: str) -> HttpGrant:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key")
    d = HttpGrant()
    try:
        allow = _origins(raw.get("allow", []))
    except ValueError as exc:
        raise ConfigError(f"{where}.allow: {exc}") from None
    cidrs = raw.get("allow_cidrs", [])
    if not isinstance(cidrs, list):
        raise ConfigError(f"{where}.allow_cidrs: must be a list of CIDRs")
    try:
        allow_cidrs = parse_cidrs(cidrs)
    except ValueError as exc:
        raise ConfigError(f"{where}.allow_cidrs: {exc}") from None
    follow = raw.get("follow_redirects", False)
    if not isinstance(follow, bool):
        raise ConfigError(f"{where}.follow_redirects: must be true or false, got {follow!r}")
    return HttpGrant(
        allow=allow,
        allow_cidrs=allow_cidrs,
        follow_redirects=follow,
        max_request_bytes=_int(
            raw, "max_request_bytes", where, d.max_request_bytes, 0, MAX_BODY_BYTES
        ),
        max_response_bytes=_int(
            raw, "max_response_bytes", where, d.max_response_bytes, 0, MAX_BODY_BYTES
        ),
        timeout_ms=_int(raw, "timeout_ms", where, d.timeout_ms, 1, 600_000),
        max_concurrent=_int(raw, "max_concurrent", where, d.max_concurrent, 1, 64),
        credentials=_credentials(raw.get("credentials", {}), f"{where}.credentials"),
    )


def parse_http_policy(raw: Any) -> HttpPolicy:
    """Validate the ``[http]`` table; every :class:`ConfigError` names the key."""
    if not isinstance(raw, Mapping):
        raise ConfigError("http: must be a table")
    unknown = sorted(set(raw) - {"ca_file", "plugins"})
    if unknown:
        raise ConfigError(f"http.{unknown[0]}: unknown key")
    ca_file = raw.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        raise ConfigError(f"http.ca_file: must be a non-empty path string, got {ca_file!r}")
    per_plugin = raw.get("plugins", {})
    if not isinstance(per_plugin, Mapping):
        raise ConfigError("http.plugins: must be a table of plugin name -> grant")
    plugins = {}
    for name, table in per_plugin.items():
        if not NAME_RE.match(name):
            raise ConfigError(f"http.plugins.{name}: not a plugin name")
        plugins[name] = _grant(table, f"http.plugins.{name}")
    return HttpPolicy(ca_file, plugins)
