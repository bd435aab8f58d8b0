"""What an author's ``forgeonectl run`` (no ``--config``) grants on the command line, in the
shape of the daemon config it stands for.

- ``--allow-http PATTERN`` … → ``[http.plugins.NAME] allow``; the plugin reaches only the
  origins its manifest asks for **and** these patterns.
- ``--allow-cidr CIDR`` … → ``allow_cidrs``: without one, an address in a loopback, private,
  link-local, CGNAT, multicast or metadata range is refused at connect time, as in the daemon.
- ``--bind-secret NAME=HOST`` … → ``[http.plugins.NAME.credentials] NAME = [HOST, …]``:
  ``{{secret:NAME}}`` in a request header is filled in (from ``--secret NAME=FILE``) only for
  a host matching one of its ``HOST`` patterns (``api.example.com``, ``*.example.com``).
- ``--set KEY=VALUE`` … → ``plugins.conf.d/NAME.toml``: VALUE is read as a TOML value
  (``3``, ``true``, ``0.5``, ``"text"``, ``{ credential = "api" }``), else taken as text.
"""

from __future__ import annotations

import tomllib
from typing import Any

from forgeoned.core.http_grant import HttpGrant
from forgeoned.core.netrules import parse_cidrs
from forgeoned.core.origins import HostPattern, parse_host_pattern, parse_origin_patterns
from forgeoned.errors import ConfigError


def _split(value: str, flag: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not sep or not key or not rest:
        raise ConfigError(f"{flag} {value!r}: expected NAME=VALUE")
    return key, rest


def author_grant(allow: list[str], cidrs: list[str], bindings: list[str]) -> HttpGrant | None:
    """The outbound grant of the flags (None: no ``--allow-http``, nothing granted)."""
    if not allow:
        if cidrs or bindings:
            flag = "--allow-cidr" if cidrs else "--bind-secret"
            raise ConfigError(f"{flag}: grants nothing without --allow-http")
        return None
    try:
        origins = parse_origin_patterns(allow)
    except ValueError as exc:
        raise ConfigError(f"--allow-http: {exc}") from None
    try:
        networks = parse_cidrs(cidrs)
    except ValueError as exc:
        raise ConfigError(f"--allow-cidr: {exc}") from None
    credentials: dict[str, tuple[HostPattern, ...]] = {}
    for binding in bindings:
        name, host = _split(binding, "--bind-secret")
        try:
            credentials[name] = (*credentials.get(name, ()), parse_host_pattern(host))
        except ValueError as exc:
            raise ConfigError(f"--bind-secret {binding!r}: {exc}") from None
    return HttpGrant(allow=origins, allow_cidrs=networks, credentials=credentials)


def settings(values: list[str]) -> dict[str, Any]:
    """``--set`` values as the operator's file would hold them."""
    out: dict[str, Any] = {}
    for value in values:
        key, text = _split(value, "--set")
        if key in out:
            raise ConfigError(f"--set {key}: given twice")
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    """The report's metric series as ``name{label=value} value`` lines."""
    out = []
    for name, metric in metrics.items():
        for series in metric["series"]:
            labels = ",".join(f"{k}={v}" for k, v in series["labels"].items())
            where = f"{name}{{{labels}}}" if labels else name
            if "value" in series:
                out.append(f"{where} {series['value']:g}")
            else:
                out.append(f"{where} count {series['count']} sum {series['sum']:g}")
    return out
