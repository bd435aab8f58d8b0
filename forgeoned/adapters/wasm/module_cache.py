"""The cache of compiled modules: serialized native code by content hash, in ``cache_dir``.

Entries are ``MAGIC ‖ sha256(payload) ‖ payload`` written atomically under
``cache_dir/<wasm sha256>.<engine tag>.cwasm``; an entry whose checksum does not match (or that
the runtime refuses to deserialize) is deleted and recompiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Final

MAGIC: Final = b"FGNCWASM1\n"


def engine_tag() -> str:
    """Distinguishes caches of different wasmtime builds (a serialized module is build-bound)."""
    from importlib.metadata import version

    return f"wasmtime-{version('wasmtime')}"


class ModuleCache:
    """Serialized modules by content hash, in a directory the daemon owns."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tag = engine_tag()

    def path(self, sha256: str) -> Path:
        return self.directory / f"{sha256}.{self.tag}.cwasm"

    def get(self, sha256: str) -> bytes | None:
        try:
            raw = self.path(sha256).read_bytes()
        except OSError:
            return None
        head = len(MAGIC) + 32
        payload = raw[head:]
        if raw[: len(MAGIC)] != MAGIC or hashlib.sha256(payload).digest() != raw[len(MAGIC) : head]:
            self.drop(sha256)
            return None
        return payload

    def put(self, sha256: str, payload: bytes) -> None:
        """Atomic (rename) but not fsync'd: after a power cut an entry may be missing or
        torn, and the checksum turns either into a recompile, so durability buys nothing."""
        path = self.path(sha256)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(MAGIC + hashlib.sha256(payload).digest() + payload)
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def drop(self, sha256: str) -> None:
        with contextlib.suppress(OSError):
            self.path(sha256).unlink()
