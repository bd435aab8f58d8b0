"""The daemon's durable state (:mod:`forgeoned.core.state`) in one JSON document on disk.

Both live in one file written with :func:`atomic_write` so that a crash can never leave a
floor that is ahead of the active set (or the reverse): a restart sees exactly the state
before or exactly the state after a swap.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.core.audit_anchor import Anchor
from forgeoned.core.state import DaemonState
from forgeoned.errors import StateError

STATE_FILE = "state.json"


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
        """Persist ``new`` durably, then make it current. On error the old state stays.

        The audit anchor is not the caller's to change (it may hold a state read before the
        last checkpoint): it is kept as it is, and only :meth:`update_anchor` changes it."""
        with self._lock:
            new = replace(new, audit_anchor=self._state.audit_anchor)
            atomic_write(self.path, json.dumps(new.to_json(), indent=1, sort_keys=True).encode())
            self._state = new

    def update_anchor(self, change: Callable[[Anchor | None], Anchor | None]) -> Anchor | None:
        """Replace the audit anchor (:mod:`forgeoned.core.audit_anchor`) by ``change(current)``,
        atomically; persisted when it differs. Returns the anchor now in force."""
        with self._lock:
            anchor = change(self._state.audit_anchor)
            if anchor != self._state.audit_anchor:
                new = replace(self._state, audit_anchor=anchor)
                data = json.dumps(new.to_json(), indent=1, sort_keys=True).encode()
                atomic_write(self.path, data)
                self._state = new
            return anchor

    def update(self, **changes: Any) -> DaemonState:
        """Persist the current state with some fields replaced; returns the new state."""
        with self._lock:
            new = replace(self._state, **changes)
        self.commit(new)
        return new
