"""One compile-cache entry on disk: its meta file's format and the checked, open hit.

The meta file is two lines of JSON: ``{"format", "code_bytes", "code_sha256"}``, then the
module's :class:`~forgeoned.core.module_interface.ModuleInterface`. A :class:`CacheHit` holds
the code file open; :attr:`CacheHit.path` (``/proc/self/fd/N``) names exactly the bytes that
were checked, whatever happens to the directory entry meanwhile.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Final

from forgeoned.core.module_interface import ModuleInterface

FORMAT: Final = 2
_HASH_READ_MAX: Final = 1 << 20  # smaller code is hashed from one read, larger in chunks


@dataclass(frozen=True, slots=True)
class NativeCode:
    """A freshly compiled module: wasmtime's serialized native code and its interface."""

    interface: ModuleInterface
    code: bytes


def parse_meta(raw: bytes) -> tuple[int, str, ModuleInterface]:
    """(code size, code SHA-256, interface) from a meta file; ValueError if it is not one."""
    head, _, interface = raw.partition(b"\n")
    try:
        meta = json.loads(head)
        if meta["format"] != FORMAT:
            raise ValueError(f"format {meta['format']!r}")
        return meta["code_bytes"], meta["code_sha256"], _interface(interface)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a cache entry: {exc!r}") from None


@functools.lru_cache(maxsize=256)
def _interface(line: bytes) -> ModuleInterface:
    return ModuleInterface.from_json(json.loads(line))


def encode_meta(native: NativeCode) -> bytes:
    head = {
        "format": FORMAT,
        "code_bytes": len(native.code),
        "code_sha256": hashlib.sha256(native.code).hexdigest(),
    }
    lines = (head, native.interface.to_json())
    return b"\n".join(json.dumps(x, separators=(",", ":")).encode() for x in lines)


def code_digest(fd: int, size: int) -> str:
    if size <= _HASH_READ_MAX:
        return hashlib.sha256(os.pread(fd, size, 0)).hexdigest()
    with open(fd, "rb", buffering=0, closefd=False) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class CacheHit:
    """A checked entry, held open: :attr:`path` names exactly the checked bytes until
    :meth:`close` (use it as a context manager)."""

    def __init__(self, fd: int, interface: ModuleInterface, size: int) -> None:
        self.fd = fd
        self.interface = interface
        self.size = size  # bytes of native code

    @property
    def path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> CacheHit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
