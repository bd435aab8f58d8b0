"""The host-services factory: what each loaded plugin version's host functions may touch.

For a manifest it builds the :class:`HostServices` of that version: the capabilities
narrowed by the operator's policy, the environment variables it may read, the secrets
directory, its kv store (one per plugin name, opened on first use, kept across versions),
its denial throttle (one per name too, so that restarts and swaps do not refill the audit
budget), its counters, and the sink of its ``log`` calls (rate limited per plugin, then journald, or
the ``forgeoned.plugin`` logger on stderr without it or while it is down). The loader calls
it once per version it instantiates.

It remembers what it granted to each plugin name last, so that a reload that changes the
capability policy or ``plugin_env`` can tell exactly which running plugins now hold other
capabilities than the configuration in force would give them (:meth:`stale`).
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from forgeoned.adapters.audit.console import ConsoleWriter
from forgeoned.adapters.audit.journald import JournalWriter, PluginLogSink
from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.files.plugin_config import PluginConfigFiles
from forgeoned.adapters.http.hook import HttpHook, secret_reader, ssl_context
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.core.denial_throttle import DenialThrottle
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.hooks_manifest import MetricDecl
from forgeoned.core.http_grant import HttpGrant
from forgeoned.core.manifest import Capabilities, Manifest
from forgeoned.core.plugin_config import EffectiveConfig
from forgeoned.core.plugin_metrics import PluginMetricSet
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.stats import PluginStats
from forgeoned.daemon.config import Config
from forgeoned.errors import PluginConfigError

if TYPE_CHECKING:  # httpcore: loaded once a plugin is granted an outbound origin
    from forgeoned.adapters.http.backend import Resolver, SystemResolver

# effective capabilities, readable env names, the outbound HTTP grant (None: no origin)
Grant = tuple[Capabilities, frozenset[str], HttpGrant | None]


def grant(config: Config, name: str, requested: Capabilities) -> Grant:
    """What ``config`` lets plugin ``name`` use of what its manifest asks for. Outbound
    origins are granted in ``[http.plugins.NAME]``, nowhere else."""
    http = config.http.grant_for(name)
    policy = replace(config.policy_for(name), http=http.allow if http else frozenset())
    caps = requested.narrowed(policy)
    return caps, frozenset(caps.env & set(config.plugin_env)), http if caps.http else None


def credentials_dir(config: Config) -> Path | None:
    """Where plugin secrets come from: ``credentials_dir``, else systemd's credentials."""
    if config.credentials_dir is None and os.environ.get("CREDENTIALS_DIRECTORY"):
        return Path(os.environ["CREDENTIALS_DIRECTORY"])
    return config.credentials_dir


class HostServicesFactory:
    def __init__(
        self,
        config: Config,
        audit: AuditSink,
        clock: Clock,
        stats_of: Callable[[str], PluginStats],
        journal: JournalWriter | None,
        resolver: Resolver | None = None,
    ) -> None:
        """``resolver``: how outbound HTTP resolves host names (tests inject one)."""
        self.config = config  # the live keys change on reload (policies, plugin_env)
        self._audit = audit
        self._clock = clock
        self._stats_of = stats_of
        writer = journal if journal is not None else ConsoleWriter()
        self._plugin_log = PluginLogSink(writer, stats_of, clock)
        self._kv: dict[str, KvStore] = {}
        self._denials: dict[str, DenialThrottle] = {}
        self._granted: dict[str, tuple[Capabilities, Grant]] = {}  # name -> (asked, given)
        self._configs: dict[str, EffectiveConfig] = {}  # the config in force, per name
        self._metrics: dict[str, tuple[tuple[MetricDecl, ...], PluginMetricSet]] = {}
        self._resolver = resolver
        self._system: SystemResolver | None = None  # the resolver it made (and closes)
        self._http_slots: dict[str, tuple[int, threading.BoundedSemaphore]] = {}
        self._tls: tuple[str | None, ssl.SSLContext] | None = None  # (ca_file, its context)

    def __call__(self, manifest: Manifest) -> HostServices:
        name = manifest.name
        secrets = self._secrets_dir()  # once per version: each os.environ lookup costs
        # first: a refused config changes nothing
        config = self._config_for(manifest, self._files(secrets))
        given = grant(self.config, name, manifest.capabilities)
        self._granted[name] = (manifest.capabilities, given)
        caps, allowed, http = given
        env = {k: os.environ[k] for k in allowed if k in os.environ}
        stats = self._stats_of(name)
        stats.custom = self._metrics_for(name, manifest.metrics) if caps.metrics else None
        stats.functions = manifest.functions
        return HostServices(
            plugin=name, version=manifest.version, capabilities=caps, env=env,
            secrets_dir=secrets, kv=self._kv_for(name, caps.kv_quota_bytes),
            audit=self._audit, log=self.log, clock=self._clock, stats=stats,
            denials=self._denials_for(name),
            config=config.values, metrics=stats.custom, functions=frozenset(manifest.functions),
            http=self._http_hook(name, caps, http, secrets),
        )  # fmt: skip

    # --- provider hooks: per-plugin config and metrics ----------------------------------------

    def _files(self, secrets: Path | None) -> PluginConfigFiles:
        return PluginConfigFiles(self.config.plugin_config_dir, secrets)

    def _config_for(self, manifest: Manifest, files: PluginConfigFiles) -> EffectiveConfig:
        """The config ``manifest``'s version starts with. A file refused now while the same
        declarations run with an accepted one (a restart after a bad edit): that one is kept,
        the refusal audited. A new set of declarations with a refused file: the load fails."""
        name = manifest.name
        kept = self._configs.get(name)
        try:
            config = files.resolve(name, manifest.config)
        except PluginConfigError as exc:
            if kept is None or kept.keys != manifest.config:
                raise
            self.refused(name, manifest.version, exc)
            return kept
        if config.keys and (kept is None or kept.sha256 != config.sha256):
            self._audit.record(
                AuditEvent(
                    EventName.PLUGIN_CONFIGURED, plugin=name, version=manifest.version,
                    message=f"plugin {name}: configuration {config.sha256[:12]} in force",
                    details={"config_sha256": config.sha256, "keys": sorted(config.values)},
                )
            )  # fmt: skip
        self._configs[name] = config
        return config

    def refused(self, name: str, version: str | None, exc: PluginConfigError) -> None:
        """Audit and count a refused config file (the config in force stays)."""
        self._stats_of(name).config_refused += 1
        self._audit.record(
            AuditEvent(
                EventName.PLUGIN_CONFIG_REFUSED, plugin=name, version=version,
                reason=exc.code, message=str(exc),
            )
        )  # fmt: skip

    def reconfigured(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """Of ``names``, those whose config file now gives another config than the one in
        force (to restart), and those whose file is refused (audited, counted, kept)."""
        changed, refused = [], []
        files = self._files(self._secrets_dir())
        for name in sorted(names):
            kept = self._configs.get(name)
            if kept is None:
                continue
            try:
                config = files.resolve(name, kept.keys)
            except PluginConfigError as exc:
                self.refused(name, None, exc)
                refused.append(f"{name}: {exc}")
                continue
            if config.sha256 != kept.sha256:
                changed.append(name)
        return changed, refused

    def _metrics_for(self, name: str, decls: tuple[MetricDecl, ...]) -> PluginMetricSet | None:
        """One metric set per plugin name, kept across restarts while its declarations stay."""
        if not decls:
            return None
        known = self._metrics.get(name)
        if known is not None and known[0] == decls:
            return known[1]
        metrics = PluginMetricSet(decls)
        self._metrics[name] = (decls, metrics)
        return metrics

    def _http_hook(
        self, name: str, caps: Capabilities, http: HttpGrant | None, secrets: Path | None
    ) -> HttpHook | None:
        """The plugin's outbound HTTP hook; its concurrency slots are kept per name."""
        if http is None:
            return None
        if self._resolver is None:
            # outbound HTTP (httpcore) is loaded here, by the first plugin granted an origin
            from forgeoned.adapters.http import client  # noqa: F401  (before its first request)
            from forgeoned.adapters.http.backend import SystemResolver

            self._resolver = self._system = SystemResolver()
        held = self._http_slots.get(name)
        if held is None or held[0] != http.max_concurrent:
            slots = threading.BoundedSemaphore(http.max_concurrent)
            held = self._http_slots[name] = (http.max_concurrent, slots)
        ca_file = self.config.http.ca_file
        if self._tls is None or self._tls[0] != ca_file:  # loading CAs takes milliseconds
            self._tls = (ca_file, ssl_context(Path(ca_file) if ca_file else None))
        secret = secret_reader(secrets)
        return HttpHook(caps.http, http, self._resolver, self._tls[1], secret, held[1])

    def stale(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` whose last grant differs from what the config in force gives."""
        out = []
        for name in sorted(names):
            granted = self._granted.get(name)
            if granted is not None and grant(self.config, name, granted[0]) != granted[1]:
                out.append(name)
        return out

    def log(self, plugin: str, level: int, message: str) -> None:
        """A plugin's ``log`` call (level 0 debug, 1 info, 2 notice, 3 warning, 4 error)."""
        self._plugin_log(plugin, level, message)

    def _denials_for(self, name: str) -> DenialThrottle:
        denials = self._denials.get(name)
        if denials is None:
            denials = self._denials[name] = DenialThrottle()
        return denials

    def _secrets_dir(self) -> Path | None:
        return credentials_dir(self.config)

    def _kv_for(self, name: str, quota: int | None) -> KvStore | None:
        if quota is None:
            return None
        kv = self._kv.get(name)
        if kv is None:
            kv = self._kv[name] = KvStore(self.config.state_dir / "kv" / name, quota)
        return kv

    def close(self) -> None:
        for kv in self._kv.values():
            kv.close()
        if self._system is not None:
            self._system.close()
