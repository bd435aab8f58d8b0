"""The daemon's durable state: the active set and the rollback floors, in one JSON document.

Both live in one file written with :func:`atomic_write` so that a crash can never leave a
floor that is ahead of the active set (or the reverse): a restart sees exactly the state
before or exactly the state after a swap.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.errors import StateError

STATE_FILE = "state.json"
FORMAT = 1


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


class StateStore:
    """Loads and atomically replaces ``STATE_DIR/state.json``; thread-safe."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE
        self._lock = threading.Lock()
        self._state = self._load()

    def _load(self) -> DaemonState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return DaemonState()
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            return DaemonState.from_json(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise StateError(f"{self.path} is not valid JSON: {exc}") from exc

    @property
    def state(self) -> DaemonState:
        with self._lock:
            return self._state

    def commit(self, new: DaemonState) -> None:
        """Persist ``new`` durably, then make it current. On error the old state stays."""
        data = json.dumps(new.to_json(), indent=1, sort_keys=True).encode()
        with self._lock:
            atomic_write(self.path, data)
            self._state = new

    def update(self, **changes: Any) -> DaemonState:
        """Persist the current state with some fields replaced; returns the new state."""
        with self._lock:
            new = replace(self._state, **changes)
        self.commit(new)
        return new
