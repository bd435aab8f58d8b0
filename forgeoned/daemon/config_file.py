"""The daemon's configuration file (TOML): strict validation of every key into a :class:`Config`.

Unknown keys and bad values are errors that name the key and the file, in one line, because a
typo in a daemon config must stop the daemon at start rather than silently fall back to a
default. DESIGN.md section 4 fixes the core keys; the rest are documented in
``etc/forgeoned.toml``. The defaults are those of :class:`~forgeoned.daemon.config.Config`.

Relative paths resolve against ``base_dir``; when the file does not set it, ``base_dir`` is the
parent of the directory that holds the config file. So ``etc/forgeoned.dev.toml`` in a checkout
resolves ``plugins.d`` to the checkout's ``plugins.d`` whatever the current directory is, and
production configs use absolute paths anyway.

Every table is validated once, here: the daemon's own keys by :class:`_Reader`, the tables
with a record in ``core`` (``[control]``, ``[trust]``, ``[limits]``, ``[http]``,
``[staging]``, ``[[sources]]``) by that record's parser.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from forgeoned.core.ceilings import parse_ceilings
from forgeoned.core.control_config import parse_control_config
from forgeoned.core.http_grant import HttpPolicy, parse_http_policy
from forgeoned.core.manifest import Capabilities
from forgeoned.core.manifest_parse import parse_capabilities
from forgeoned.core.sources import parse_sources
from forgeoned.core.staging_policy import parse_staging_policy
from forgeoned.core.supervisor import RestartPolicy
from forgeoned.core.trust import Mode, parse_trust_policy
from forgeoned.daemon.config import DEFAULT_POLICY, CompileLimits, Config
from forgeoned.errors import ConfigError, ManifestError

MODES: Final = tuple(m.value for m in Mode)

_TOP: Final = frozenset(
    {
        "mode",
        "base_dir",
        "plugins_dir",
        "state_dir",
        "trust_dir",
        "cache_dir",
        "credentials_dir",
        "plugin_config_dir",
        "plugin_env",
        "drain_timeout_s",
        "lifecycle_timeout_s",
        "call_hold_timeout_s",
        "shutdown_timeout_s",
        "rescan_interval_s",
        "debounce_ms",
        "max_artifact_bytes",
        "compile",
        "restart",
        "capabilities",
        "trust",
        "control",
        "limits",
        "metrics",
        "audit",
        "http",
        "staging",
        "sources",
        "trust_watch",
    }
)
_COMPILE: Final = frozenset(
    {"workers", "cpu_seconds", "memory_bytes", "timeout_s", "cache_max_bytes"}
)
_RESTART: Final = frozenset(
    {"max_failures", "window_s", "backoff_initial_s", "backoff_max_s", "backoff_factor", "jitter"}
)
_METRICS: Final = frozenset({"listen", "enabled"})
_AUDIT: Final = frozenset(
    {
        "dir",
        "journald",
        "verify_interval_s",
        "full_verify_every",
        "retain_files",
        "archive_dir",
        "rotate_bytes",
    }
)


class _Reader:
    """Typed access to one TOML table; every error names ``file: key``."""

    def __init__(
        self, source: Path, table: dict[str, Any], prefix: str, keys: frozenset[str]
    ) -> None:
        self.source = source
        self.table = table
        self.prefix = prefix
        unknown = sorted(set(table) - keys)
        if unknown:
            raise self.error(unknown[0], "unknown key")

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.prefix}{key}: {problem}")

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, got {value!r}")
        if not lo <= value <= hi:
            raise self.error(key, f"{value} is outside {lo:g}..{hi:g}")
        return float(value)

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise self.error(key, f"{value} is outside {lo}..{hi}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def path(self, key: str, default: Path, base: Path) -> Path:
        raw = self.table.get(key)
        if raw is None:
            return default
        if not isinstance(raw, str) or not raw:
            raise self.error(key, f"must be a non-empty path string, got {raw!r}")
        return base / raw if not Path(raw).is_absolute() else Path(raw)

    def subtable(self, key: str) -> dict[str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return value


def _policies(r: _Reader) -> tuple[Capabilities, dict[str, Capabilities]]:
    table = r.subtable("capabilities")
    default = DEFAULT_POLICY
    per_plugin: dict[str, Capabilities] = {}
    for name, raw in table.items():
        if isinstance(raw, dict) and "http" in raw:
            raise r.error(f"capabilities.{name}.http", "grant outbound HTTP in [http.plugins.NAME]")
        try:
            caps = parse_capabilities(raw)
        except ManifestError as exc:
            raise r.error(f"capabilities.{name}", str(exc).replace("manifest field ", "")) from None
        if name == "default":
            default = caps
        else:
            per_plugin[name] = caps
    return default, per_plugin


def _http_ca(http: HttpPolicy, base: Path, source: Path) -> HttpPolicy:
    """``[http] ca_file`` resolved against ``base``; it must be a file now, not at the first
    outbound request of some plugin."""
    if http.ca_file is None:
        return http
    path = base / http.ca_file
    if not path.is_file():
        raise ConfigError(f"{source}: http.ca_file: {path} is not a file")
    return replace(http, ca_file=str(path))


def parse_config(raw: dict[str, Any], source: Path) -> Config:
    """Validate a decoded TOML document (``source`` is used for base_dir and messages)."""
    r = _Reader(source, raw, "", _TOP)
    d = Config(path=source)
    base = r.path("base_dir", source.resolve().parent.parent, source.resolve().parent)
    mode = r.string("mode", d.mode.value)
    if mode not in MODES:
        raise r.error("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    env = raw.get("plugin_env", [])
    if not isinstance(env, list) or not all(isinstance(e, str) and e for e in env):
        raise r.error("plugin_env", "must be a list of environment variable names")
    c = _Reader(source, r.subtable("compile"), "compile.", _COMPILE)
    rs = _Reader(source, r.subtable("restart"), "restart.", _RESTART)
    m = _Reader(source, r.subtable("metrics"), "metrics.", _METRICS)
    a = _Reader(source, r.subtable("audit"), "audit.", _AUDIT)
    dr = RestartPolicy()
    restart = RestartPolicy(
        max_failures=rs.integer("max_failures", dr.max_failures, 1, 10_000),
        window_s=rs.number("window_s", dr.window_s, 0.001, 86_400),
        backoff_initial_s=rs.number("backoff_initial_s", dr.backoff_initial_s, 0, 3600),
        backoff_max_s=rs.number("backoff_max_s", dr.backoff_max_s, 0, 86_400),
        backoff_factor=rs.number("backoff_factor", dr.backoff_factor, 1, 100),
        jitter=rs.number("jitter", dr.jitter, 0, 1),
    )
    if restart.backoff_max_s < restart.backoff_initial_s:
        raise rs.error("backoff_max_s", "must not be smaller than backoff_initial_s")
    dc = CompileLimits()
    default, per_plugin = _policies(r)
    listen = m.string("listen", d.metrics_listen)
    port = listen.rpartition(":")[2]
    if ":" not in listen or not port.isdigit() or int(port) > 65535:  # 0: any free port
        raise m.error("listen", f"must be HOST:PORT (port 0..65535), got {listen!r}")
    control_raw = r.subtable("control")
    enabled = control_raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise r.error("control.enabled", f"must be true or false, got {enabled!r}")
    try:
        control = parse_control_config({k: v for k, v in control_raw.items() if k != "enabled"})
        trust = parse_trust_policy(r.subtable("trust") or None)
        limits = parse_ceilings(r.subtable("limits"))
        http = parse_http_policy(r.subtable("http"))
        staging = parse_staging_policy(r.subtable("staging") or None)
        sources = parse_sources(raw.get("sources"))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    socket = str(base / control.socket) if not Path(control.socket).is_absolute() else None
    return Config(
        path=source,
        base_dir=base,
        mode=Mode(mode),
        plugins_dir=r.path("plugins_dir", d.plugins_dir, base),
        state_dir=r.path("state_dir", d.state_dir, base),
        trust_dir=r.path("trust_dir", d.trust_dir, base),
        cache_dir=r.path("cache_dir", d.cache_dir, base),
        credentials_dir=r.path("credentials_dir", Path(), base)
        if "credentials_dir" in raw
        else None,
        plugin_env=tuple(env),
        plugin_config_dir=r.path("plugin_config_dir", d.plugin_config_dir, base),
        drain_timeout_s=r.number("drain_timeout_s", d.drain_timeout_s, 0, 3600),
        lifecycle_timeout_s=r.number("lifecycle_timeout_s", d.lifecycle_timeout_s, 0.001, 3600),
        call_hold_timeout_s=r.number("call_hold_timeout_s", d.call_hold_timeout_s, 0, 3600),
        shutdown_timeout_s=r.number("shutdown_timeout_s", d.shutdown_timeout_s, 0.1, 3600),
        rescan_interval_s=r.number("rescan_interval_s", d.rescan_interval_s, 0.1, 86_400),
        debounce_ms=r.integer("debounce_ms", d.debounce_ms, 0, 60_000),
        max_artifact_bytes=r.integer("max_artifact_bytes", d.max_artifact_bytes, 1024, 1 << 32),
        compile=CompileLimits(
            workers=c.integer("workers", dc.workers, 1, 64),
            cpu_seconds=c.integer("cpu_seconds", dc.cpu_seconds, 1, 3600),
            memory_bytes=c.integer("memory_bytes", dc.memory_bytes, 64 << 20, 1 << 40),
            timeout_s=c.number("timeout_s", dc.timeout_s, 0.1, 3600),
            cache_max_bytes=c.integer("cache_max_bytes", dc.cache_max_bytes, 0, 1 << 44),
        ),
        restart=restart,
        default_policy=default,
        plugin_policies=per_plugin,
        trust=trust,
        control_enabled=enabled,
        control=replace(control, socket=socket) if socket is not None else control,
        limits=limits,
        http=_http_ca(http, base, source),
        staging=staging,
        metrics_listen=listen,
        metrics_enabled=m.boolean("enabled", d.metrics_enabled),
        audit_dir=a.path("dir", Path(), base) if "dir" in a.table else None,
        audit_journald=a.boolean("journald", d.audit_journald),
        audit_verify_interval_s=a.number(
            "verify_interval_s", d.audit_verify_interval_s, 0, 86_400 * 7
        ),
        audit_full_verify_every=a.integer(
            "full_verify_every", d.audit_full_verify_every, 1, 1_000_000
        ),
        audit_retain_files=a.integer("retain_files", d.audit_retain_files, 0, 1_000_000),
        audit_rotate_bytes=a.integer("rotate_bytes", d.audit_rotate_bytes, 4096, 1 << 30),
        audit_archive_dir=a.path("archive_dir", Path(), base) if "archive_dir" in a.table else None,
        sources=sources,
        trust_watch=r.boolean("trust_watch", d.trust_watch),
    )


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at ``path``; raises :class:`ConfigError` in one line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(raw, path)
