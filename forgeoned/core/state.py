"""The daemon's durable state as values: the active set, the rollback floors, the downgrade
overrides an admin recorded, the quarantined names (with why), the refused candidates, and the
audit log's anchor.

A refused candidate is a (name, sha256) that was rejected, rolled back or failed while another
version was active: it is not tried again until other bytes replace it or an admin acts
(``forgeonectl retry``, ``install`` of those bytes, ``allow-downgrade``). Fields added after the
first release are optional in the file, so a state file written before them still loads.

Pure records and their JSON form; :class:`forgeoned.adapters.files.state_store.StateStore`
writes them to disk (one atomic file) and :class:`forgeoned.service.active_set.ActiveSet`
changes them through the :class:`~forgeoned.core.ports.StateRecord` port.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.audit_anchor import Anchor
from forgeoned.errors import StateError

FORMAT: Final = 1
MAX_REFUSED_PER_NAME: Final = 8  # the most recent refusals of one name kept (oldest forgotten)


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


class RefusalKind(enum.Enum):
    """How a candidate failed to become the active version."""

    REJECTED = "rejected"  # must not run: signature, ABI, ceiling, downgrade, compile…
    ROLLED_BACK = "rolled_back"  # ran (init/start) and failed; the active version kept serving
    FAILED = "failed"  # ran and failed where nothing was serving; the active version comes back


@dataclass(frozen=True, slots=True)
class Refusal:
    """One candidate that stays out, with the reason its audit event carried."""

    version: str
    sha256: str
    kind: RefusalKind
    reason: str  # the error code: the audit event's ``reason``, the control API's ``code``
    message: str
    at: float  # wall-clock time (Unix seconds)
    file: str = ""  # the plugins.d file it came from

    def to_json(self) -> dict[str, Any]:
        return {**vars_of(self), "kind": self.kind.value}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Refusal:
        return cls(**{**raw, "kind": RefusalKind(raw["kind"])})


@dataclass(frozen=True, slots=True)
class QuarantineCause:
    """Why a plugin was quarantined: the budget that ran out and the last failure's text."""

    reason: str
    message: str
    last_error: str
    at: float  # wall-clock time (Unix seconds)


@dataclass(frozen=True, slots=True)
class DaemonState:
    active: dict[str, ActiveRecord] = field(default_factory=dict)
    floors: dict[str, Floor] = field(default_factory=dict)
    overrides: dict[str, DowngradeOverride] = field(default_factory=dict)
    quarantined: frozenset[str] = frozenset()
    refused: dict[str, tuple[Refusal, ...]] = field(default_factory=dict)  # oldest first
    causes: dict[str, QuarantineCause] = field(default_factory=dict)  # of quarantined names
    audit_anchor: Anchor | None = None  # where the audit log had got to (core.audit_anchor)

    def is_refused(self, name: str, sha256: str) -> bool:
        return any(r.sha256 == sha256 for r in self.refused.get(name, ()))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "active": {k: vars_of(v) for k, v in sorted(self.active.items())},
            "floors": {k: vars_of(v) for k, v in sorted(self.floors.items())},
            "overrides": {k: vars_of(v) for k, v in sorted(self.overrides.items())},
            "quarantined": sorted(self.quarantined),
            "quarantine_causes": {k: vars_of(v) for k, v in sorted(self.causes.items())},
            "refused": {k: [r.to_json() for r in v] for k, v in sorted(self.refused.items()) if v},
        }
        if self.audit_anchor is not None:
            out["audit_anchor"] = self.audit_anchor.to_dict()
        return out

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
                refused={
                    k: tuple(Refusal.from_json(r) for r in v)
                    for k, v in raw.get("refused", {}).items()
                },
                causes={
                    k: QuarantineCause(**v) for k, v in raw.get("quarantine_causes", {}).items()
                },
                audit_anchor=Anchor.from_dict(raw["audit_anchor"])
                if isinstance(raw.get("audit_anchor"), dict)
                else None,
            )
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            raise StateError(f"state file is corrupt: {exc}") from exc


def vars_of(
    value: ActiveRecord | Floor | DowngradeOverride | Refusal | QuarantineCause,
) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}
