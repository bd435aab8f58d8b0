"""One small JSON document in the state directory (``STATE_DIR/staging-evidence.json``),
replaced atomically; a missing file reads as None."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.errors import StateError


class JsonFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Any:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StateError(f"{self.path} is not valid JSON: {exc}") from exc

    def save(self, value: Any) -> None:
        data = json.dumps(value, indent=1, sort_keys=True).encode()
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            raise StateError(f"cannot write {self.path}: {exc.strerror}") from exc
