"""A plugin's effective configuration: the manifest's declared keys, the operator's values.

Pure: :func:`resolve_config` takes the declared :class:`ConfigKey` values, the decoded
operator file (``plugins.conf.d/NAME.toml``, or None when there is none) and a credential
reader, and returns the values ``config_get`` answers with plus the sha256 that audit events
carry. Every refusal is a :class:`PluginConfigError` whose one line names the file and the key.

The hash is over canonical JSON of the operator-visible facts: plain values as they are, a
secret key as ``{"credential": NAME}``. A secret's value is never hashed, logged or audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.hooks_manifest import ConfigKey, ConfigType, ConfigValue, check_value
from forgeoned.core.manifest import SECRET_RE
from forgeoned.errors import PluginConfigError

CREDENTIAL_RE: Final = SECRET_RE  # a credential is a secret by name: one rule for both
MAX_VALUE_CHARS: Final = 4096
CredentialReader = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    values: Mapping[str, str] = field(default_factory=dict)  # what config_get returns
    sha256: str = ""
    keys: tuple[ConfigKey, ...] = ()  # the declarations these values were checked against


def as_text(value: ConfigValue) -> str:
    """The text ``config_get`` hands the plugin (docs/plugin-hooks.md)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _secret(key: ConfigKey, raw: Any, where: str, read: CredentialReader) -> tuple[str, str]:
    if not isinstance(raw, Mapping) or set(raw) != {"credential"}:
        raise PluginConfigError(
            f'{where}: {key.name}: a secret key takes {{ credential = "NAME" }}, not a value'
        )
    name = raw["credential"]
    if not isinstance(name, str) or not CREDENTIAL_RE.match(name):
        raise PluginConfigError(f"{where}: {key.name}: bad credential name {name!r}")
    value = read(name)
    if value is None:
        raise PluginConfigError(
            f"{where}: {key.name}: credential {name!r} not found in the credentials directory"
        )
    return name, value


def resolve_config(
    keys: tuple[ConfigKey, ...],
    raw: Mapping[str, Any] | None,
    where: str,
    read_credential: CredentialReader,
) -> EffectiveConfig:
    """Defaults overlaid by the operator's values, each checked against its declaration."""
    given = dict(raw or {})
    declared = {k.name: k for k in keys}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise PluginConfigError(f"{where}: {unknown[0]}: unknown key (not in the manifest)")
    values: dict[str, str] = {}
    facts: dict[str, Any] = {}
    for key in keys:
        if key.name in given:
            if key.secret:
                credential, text = _secret(key, given[key.name], where, read_credential)
                values[key.name], facts[key.name] = text, {"credential": credential}
                continue
            value = check_value(key.type, given[key.name])
            if value is None:
                shown = repr(given[key.name])[:60]
                raise PluginConfigError(
                    f"{where}: {key.name}: expected {key.type.value}, got {shown}"
                )
            if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
                raise PluginConfigError(
                    f"{where}: {key.name}: longer than {MAX_VALUE_CHARS} characters"
                )
        elif key.default is not None:
            value = key.default
        elif key.required:
            raise PluginConfigError(f"{where}: {key.name}: required key has no value")
        else:
            continue
        values[key.name], facts[key.name] = as_text(value), value
    canonical = json.dumps(facts, sort_keys=True, separators=(",", ":")).encode()
    return EffectiveConfig(values, hashlib.sha256(canonical).hexdigest(), keys)


__all__ = ["ConfigType", "EffectiveConfig", "as_text", "resolve_config"]
