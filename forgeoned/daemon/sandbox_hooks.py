"""The provider hooks of a ``forgeonectl run`` (docs/plugin-hooks.md), built as the daemon's
:class:`~forgeoned.daemon.host_services.HostServicesFactory` builds them for one version:
its effective config (``config_get``), its declared metrics, its outbound HTTP hook.

- Config: with a daemon config, ``plugins.conf.d/NAME.toml`` and the credentials directory,
  read and checked by the daemon's own code (a refused file refuses the run, as it refuses
  the load); without one, the manifest's defaults overlaid by ``--set`` values.
- Metrics: one :class:`PluginMetricSet` for the run when the manifest declares metrics and
  the policy grants them; the report shows the series written (:func:`metrics_report`).
- HTTP: the daemon's :class:`HttpHook` (same allowlist, connect-time address rules,
  secret bindings and caps) behind a :class:`TapeHttpHook` when recording or replaying.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from forgeoned.adapters.files.plugin_config import PluginConfigFiles
from forgeoned.adapters.http.backend import Resolver
from forgeoned.adapters.http.hook import HttpHook, ssl_context
from forgeoned.adapters.wasm.tape import Tape
from forgeoned.adapters.wasm.tape_http import TapeHttpHook
from forgeoned.core.http_grant import HttpGrant
from forgeoned.core.manifest import Capabilities, Manifest
from forgeoned.core.plugin_config import EffectiveConfig, resolve_config
from forgeoned.core.plugin_metrics import PluginMetricSet
from forgeoned.daemon.config import Config
from forgeoned.daemon.host_services import credentials_dir


def run_config(
    config: Config,
    m: Manifest,
    settings: Mapping[str, Any] | None,
    secret: Callable[[str], bytes | None],
) -> EffectiveConfig:
    """``settings`` None: the daemon's file for ``m.name``; else these values (``--set``),
    whose secret keys name credentials given with ``--secret``."""
    if settings is None:
        return PluginConfigFiles(config.plugin_config_dir, credentials_dir(config)).resolve(
            m.name, m.config
        )

    def credential(name: str) -> str | None:
        raw = secret(name)
        return None if raw is None else raw.decode("utf-8", "replace")

    if not m.config and not settings:
        return EffectiveConfig()
    return resolve_config(m.config, settings, "--set", credential)


def run_metrics(m: Manifest, caps: Capabilities) -> PluginMetricSet | None:
    return PluginMetricSet(m.metrics) if caps.metrics and m.metrics else None


def run_http(
    config: Config,
    caps: Capabilities,
    grant: HttpGrant | None,
    secret: Callable[[str], bytes | None],
    resolver: Resolver,
    tape: Tape | None,
) -> HttpHook | None:
    """The run's outbound hook (None: no origin granted, every request is -2)."""
    if grant is None:
        return None
    ca_file = config.http.ca_file
    slots = threading.BoundedSemaphore(grant.max_concurrent)
    hook = HttpHook(
        caps.http, grant, resolver, ssl_context(Path(ca_file) if ca_file else None), secret, slots
    )
    return hook if tape is None else TapeHttpHook(hook, tape)


def metrics_report(metrics: PluginMetricSet | None) -> dict[str, Any]:
    """``{name: {"type", "series": [{"labels": {...}, "value"} | {"labels", "count", "sum"}]}}``
    for every declared metric (series only for what the plugin wrote)."""
    if metrics is None:
        return {}
    out: dict[str, Any] = {}
    for snap in metrics.snapshot():
        names = [label for label, _ in snap.decl.labels]
        series: list[dict[str, Any]] = [
            {"labels": dict(zip(names, values, strict=True)), "value": value}
            for values, value in snap.values
        ]
        series += [
            {"labels": dict(zip(names, values, strict=True)), "count": h.count, "sum": h.total}
            for values, h in snap.histograms
        ]
        out[snap.decl.name] = {"type": snap.decl.kind.value, "series": series}
    return out
