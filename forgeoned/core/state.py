"""The daemon's durable state as values: the active set, the rollback floors, the downgrade
overrides an admin recorded, and the quarantined names.

Pure records and their JSON form; :class:`forgeoned.adapters.files.state_store.StateStore`
writes them to disk (one atomic file) and :class:`forgeoned.service.active_set.ActiveSet`
changes them through the :class:`~forgeoned.core.ports.StateRecord` port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.errors import StateError

FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class ActiveRecord:
    """The version of one plugin that is (or should be) running."""

    version: str
    sha256: str
    source: str = ""  # file name in plugins.d it was loaded from


@dataclass(frozen=True, slots=True)
class Floor:
    """Highest version ever activated for a name, with the bytes' hash it had."""

    version: str
    sha256: str


@dataclass(frozen=True, slots=True)
class DowngradeOverride:
    """An admin's recorded permission to activate exactly this version (and optionally bytes)."""

    version: str
    actor: str
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class KeptVersion:
    """What the active set persists of a version that becomes active: its record, and its
    exact bytes (with a detached signature, if any) kept so that a restart finds them."""

    record: ActiveRecord
    module: bytes
    detached: bytes | None = None


@dataclass(frozen=True, slots=True)
class DaemonState:
    active: dict[str, ActiveRecord] = field(default_factory=dict)
    floors: dict[str, Floor] = field(default_factory=dict)
    overrides: dict[str, DowngradeOverride] = field(default_factory=dict)
    quarantined: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "active": {k: vars_of(v) for k, v in sorted(self.active.items())},
            "floors": {k: vars_of(v) for k, v in sorted(self.floors.items())},
            "overrides": {k: vars_of(v) for k, v in sorted(self.overrides.items())},
            "quarantined": sorted(self.quarantined),
        }

    @classmethod
    def from_json(cls, raw: Any) -> DaemonState:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise StateError("state file has an unknown format")
        try:
            return cls(
                active={k: ActiveRecord(**v) for k, v in raw.get("active", {}).items()},
                floors={k: Floor(**v) for k, v in raw.get("floors", {}).items()},
                overrides={k: DowngradeOverride(**v) for k, v in raw.get("overrides", {}).items()},
                quarantined=frozenset(raw.get("quarantined", [])),
            )
        except (TypeError, AttributeError) as exc:
            raise StateError(f"state file is corrupt: {exc}") from exc


def vars_of(value: ActiveRecord | Floor | DowngradeOverride) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}
