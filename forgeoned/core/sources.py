"""OCI sources the daemon follows: their configuration, one sync's result, and their record.

A ``[[sources]]`` entry names an OCI reference (a tag, which may move, or a digest, a pin
that never does) and how to fetch it. Each source owns exactly one file in plugins.d,
``oci-NAME.wasm``; a sync replaces that file atomically, and from there the normal
verification, rollback floor and swap apply. Pure: parsing and bookkeeping, no I/O.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.oci import Reference, parse_reference
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.errors import ConfigError

SOURCE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KEYS: Final = frozenset(
    {"name", "reference", "interval_s", "timeout_s", "max_bytes", "credentials",
     "plain_http", "tls_verify", "ca_file"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    reference: Reference
    interval_s: float = 300.0
    timeout_s: float = 30.0  # each request, and a whole download
    max_bytes: int = MAX_MODULE_BYTES  # the layer's size cap
    credentials: str | None = None  # a file name in the systemd credentials directory
    plain_http: bool = False
    tls_verify: bool = True
    ca_file: str | None = None

    @property
    def filename(self) -> str:
        """The one file in plugins.d this source writes."""
        return f"oci-{self.name}.wasm"


def parse_sources(raw: Any) -> tuple[SourceConfig, ...]:
    """The ``[[sources]]`` array; a :class:`ConfigError` naming ``sources[i].key``."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("sources: must be an array of tables ([[sources]])")
    out: list[SourceConfig] = []
    for i, entry in enumerate(raw):
        where = f"sources[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key")
        out.append(_one(entry, where))
    names = [s.name for s in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"sources: the name {dup!r} is used twice")
    return tuple(out)


def _one(entry: dict[str, Any], where: str) -> SourceConfig:
    name = entry.get("name")
    if not isinstance(name, str) or not SOURCE_NAME.match(name):
        raise ConfigError(f"{where}.name: lowercase letters, digits and '-', got {name!r}")
    ref = entry.get("reference")
    if not isinstance(ref, str):
        raise ConfigError(f"{where}.reference: must be oci://HOST/REPO:TAG or …@sha256:HEX")
    try:
        reference = parse_reference(ref)
    except ConfigError as exc:
        raise ConfigError(f"{where}.reference: {exc}") from None
    d = SourceConfig(name, reference)

    def number(key: str, default: float, lo: float, hi: float) -> float:
        value = entry.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"{where}.{key}: a number from {lo:g} to {hi:g}, got {value!r}")
        return float(value)

    def flag(key: str, default: bool) -> bool:
        value = entry.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: must be true or false, got {value!r}")
        return value

    def text(key: str) -> str | None:
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value or ("/" in value
                                  and key == "credentials")):  # fmt: skip
            raise ConfigError(f"{where}.{key}: must be a plain non-empty name, got {value!r}")
        return value

    return SourceConfig(
        name=name,
        reference=reference,
        interval_s=number("interval_s", d.interval_s, 1, 7 * 86_400),
        timeout_s=number("timeout_s", d.timeout_s, 0.1, 3600),
        max_bytes=int(number("max_bytes", d.max_bytes, 1024, MAX_MODULE_BYTES)),
        credentials=text("credentials"),
        plain_http=flag("plain_http", d.plain_http),
        tls_verify=flag("tls_verify", d.tls_verify),
        ca_file=text("ca_file"),
    )


class SyncOutcome(enum.Enum):
    SYNCED = "synced"  # a new artifact was renamed into plugins.d
    UNCHANGED = "unchanged"  # plugins.d already holds what the reference names
    FAILED = "failed"  # nothing written; the reason is a SyncReason (or a StagingReason)
    HELD = "held"  # not synced: the audit log cannot be written (nothing happens unrecorded)


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: SyncOutcome
    at: float  # wall-clock time of the result
    plugin: str | None = None
    version: str | None = None
    sha256: str | None = None
    digest: str | None = None  # the manifest's
    reason: str | None = None  # a SyncReason value when failed
    message: str = ""


@dataclass
class SourceRecord:
    """What the daemon knows of one source (read by the control API and the metrics)."""

    config: SourceConfig
    last: SyncResult | None = None
    last_success: float | None = None  # wall clock of the last synced/unchanged result
    failing_since: float | None = None  # wall clock of the first failure in a row
    syncs: Counter[str] = field(default_factory=Counter)  # by outcome
    failures: Counter[str] = field(default_factory=Counter)  # by reason

    def note(self, result: SyncResult) -> None:
        self.last = result
        self.syncs[result.outcome.value] += 1
        if result.outcome is SyncOutcome.HELD:
            return  # neither a failure of the source nor a success
        if result.outcome is SyncOutcome.FAILED:
            self.failures[result.reason or "unknown"] += 1
            if self.failing_since is None:
                self.failing_since = result.at
        else:
            self.last_success = result.at
            self.failing_since = None

    def to_json(self) -> dict[str, Any]:
        last = self.last
        kept = [
            ("plugin", last.plugin if last else None),
            ("version", last.version if last else None),
            ("sha256", last.sha256 if last else None),
            ("digest", last.digest if last else None),
            ("outcome", last.outcome.value if last else None),
            ("reason", last.reason if last else None),
            ("message", last.message if last else ""),
        ]
        return {
            "name": self.config.name,
            "reference": str(self.config.reference),
            "pinned": self.config.reference.pinned,
            "file": self.config.filename,
            "interval_s": self.config.interval_s,
            "last_success": self.last_success,
            "failing_since": self.failing_since,
            "failures": dict(self.failures),
            **dict(kept),
        }
