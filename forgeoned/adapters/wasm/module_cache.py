"""The cache of compiled modules: wasmtime's native code by content hash, in ``cache_dir``.

An entry is two files named after the wasm's SHA-256 and the engine tag:

- ``<sha256>.<tag>.cwasm``: exactly what wasmtime serialized, so that the daemon can have it
  *mapped* (``Module.deserialize_file``) instead of copied into its own memory: the code stays
  file-backed, only the pages that run become resident, and nothing of it sits in a Python
  ``bytes`` (a 97 MB module used to grow the daemon's RSS by 100 MiB);
- ``<sha256>.<tag>.meta``: the code's size and SHA-256, and the module's
  :class:`~forgeoned.core.module_interface.ModuleInterface` (format: :mod:`.cache_entry`), so
  that a warm load skips asking wasmtime for the type of every export (it is validated again at
  every load all the same). Plugins built alike declare the same interface: parsed once.

Both are written by rename, code first, and not fsync'd: after a power cut an entry may be
missing or torn, and the checksum turns either into a recompile. A reader checks the code
against the meta through one open descriptor and has wasmtime open ``/proc/self/fd/N``, so
what is mapped is the very file that was checked, even if the entry is replaced meanwhile.
An entry that does not check out is deleted (and the module compiled again).

Trust: native code from here is executed as-is. The directory is the daemon's own (0700; the
packaged unit's ``CacheDirectory=``); the checksums guard against torn writes, not attackers.

Size: at most ``max_bytes`` (``[compile] cache_max_bytes``). :meth:`ModuleCache.trim` evicts
the least recently used entries that no active or candidate version uses (files of other
wasmtime builds, of the old single-file format and stray temporaries first); an entry in
use is never evicted, even if that leaves the cache over its cap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from forgeoned.adapters.wasm.cache_entry import (
    CacheHit,
    NativeCode,
    code_digest,
    encode_meta,
    parse_meta,
)
from forgeoned.core.clock import SystemClock
from forgeoned.core.ports import Clock

__all__ = ["CODE", "META", "CacheHit", "ModuleCache", "NativeCode"]
log = logging.getLogger("forgeoned")
DEFAULT_MAX_BYTES: Final = 512 << 20
CODE: Final = ".cwasm"
META: Final = ".meta"
_META_MAX: Final = 1 << 20  # a meta file is a few hundred bytes
_TOUCH_EVERY_S: Final = 60.0  # the LRU order is kept to the minute


def engine_tag() -> str:
    """Distinguishes caches of different wasmtime builds (a serialized module is build-bound)."""
    from importlib.metadata import version

    return f"wasmtime-{version('wasmtime')}"


@dataclass(slots=True)
class _Item:
    """One entry on disk (or a stray file), as eviction sees it."""

    files: tuple[str, ...]
    size: int
    used: float  # last use (the meta file's mtime), for LRU
    current: bool  # an entry of this engine in this format (else evicted first)


class ModuleCache:
    """Native code by content hash, in a directory the daemon owns; thread-safe."""

    def __init__(
        self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, clock: Clock | None = None
    ) -> None:
        self.directory = directory
        self.clock: Clock = clock or SystemClock()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tag = engine_tag()
        self._prefix = f"{directory}/"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: dict[str, _Item] = self._scan()
        self._total = sum(item.size for item in self._items.values())
        self._warned = False  # about entries in use alone exceeding the cap

    def _stem(self, sha256: str) -> str:
        return f"{sha256}.{self.tag}"

    def path(self, sha256: str) -> Path:
        """The file holding the native code of ``sha256`` (it may not exist)."""
        return self.directory / (self._stem(sha256) + CODE)

    # --- reading --------------------------------------------------------------------------

    def get(self, sha256: str) -> CacheHit | None:
        """The entry of ``sha256``, checked and open, or None (a bad entry is dropped).
        Plain ``os`` calls on strings: this runs for every plugin at every start."""
        stem = self._stem(sha256)
        try:
            meta_fd = os.open(self._prefix + stem + META, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # a miss (or a code file of the old format, replaced on the put)
        except OSError:
            self.drop(sha256)
            return None
        try:
            size, digest, interface = parse_meta(os.read(meta_fd, _META_MAX))
            fd = os.open(self._prefix + stem + CODE, os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, ValueError):
            os.close(meta_fd)
            self.drop(sha256)
            return None
        hit = CacheHit(fd, interface, size)
        try:
            ok = os.fstat(fd).st_size == size and code_digest(fd, size) == digest
            if ok:
                self._touch(stem, meta_fd)
        except OSError:
            ok = False
        finally:
            os.close(meta_fd)
        if not ok:
            hit.close()
            self.drop(sha256)
            return None
        return hit

    def _touch(self, stem: str, meta_fd: int) -> None:
        """Record a use: the meta file's mtime is the LRU order across restarts, kept to the
        minute (a start does not rewrite 1,000 inodes when it restarts within one)."""
        now = self.clock.wall()
        try:
            if now - os.fstat(meta_fd).st_mtime >= _TOUCH_EVERY_S:
                os.utime(meta_fd, (now, now))
        except OSError:
            pass  # memory keeps the order for this run
        with self._lock:
            if (item := self._items.get(stem)) is not None:
                item.used = now

    # --- writing --------------------------------------------------------------------------

    def put(self, sha256: str, native: NativeCode) -> None:
        """Add an entry (atomic per file; raises OSError, e.g. on a full disk)."""
        stem, now = self._stem(sha256), self.clock.wall()
        meta = encode_meta(native)
        self._write(stem + CODE, native.code)
        self._write(stem + META, meta)
        with contextlib.suppress(OSError):
            os.utime(self.directory / (stem + META), (now, now))
        item = _Item((stem + META, stem + CODE), len(native.code) + len(meta), now, True)
        with self._lock:
            # the same names may be known as stray files (e.g. the old single-file format)
            self._forget(stem, stem + CODE, stem + META)
            self._items[stem] = item
            self._total += item.size

    def _write(self, name: str, data: bytes) -> None:
        path = self.directory / name
        tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def drop(self, sha256: str) -> None:
        stem = self._stem(sha256)
        with self._lock:
            self._forget(stem, stem + CODE, stem + META)
        self._unlink((stem + META, stem + CODE))

    def _forget(self, *keys: str) -> None:
        for key in keys:
            if (item := self._items.pop(key, None)) is not None:
                self._total -= item.size

    def _unlink(self, names: tuple[str, ...]) -> None:
        for name in names:  # the meta first: without it the code is never used
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()

    # --- size -----------------------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        return self._total

    def trim(self, in_use: Callable[[], Collection[str]]) -> list[str]:
        """If over the cap, evict the least recently used entries whose hash ``in_use()``
        does not name until under it; returns the evicted file stems. Cheap when under the
        cap (``in_use`` is only asked when something must go)."""
        if self._total <= self.max_bytes:
            self._warned = False
            return []
        keep = {self._stem(sha) for sha in in_use()}
        evicted: list[str] = []
        with self._lock:
            candidates = [(key, item) for key, item in self._items.items() if key not in keep]
            candidates.sort(key=lambda kv: (kv[1].current, kv[1].used))
            for key, item in candidates:
                if self._total <= self.max_bytes:
                    break
                self._forget(key)
                self._unlink(item.files)
                evicted.append(key)
            total, over = self._total, self._total > self.max_bytes
        if evicted:
            log.info("compile cache: evicted %d entries, %d bytes left", len(evicted), total)
        if over and not self._warned:
            log.warning(
                "compile cache: %d bytes in use, over compile.cache_max_bytes = %d "
                "(entries in use are never evicted)",
                total,
                self.max_bytes,
            )
        self._warned = over
        return evicted

    def _scan(self) -> dict[str, _Item]:
        """What is on disk: entries of this engine by stem; anything else by its own name."""
        items: dict[str, _Item] = {}
        with os.scandir(self.directory) as it:
            files = [(e.name, e.stat(follow_symlinks=False)) for e in it if e.is_file()]
        metas = {n[: -len(META)] for n, _ in files if n.endswith(META)}
        for name, st in files:
            stem, ext = os.path.splitext(name)  # noqa: PTH122 (a name, not a path)
            current = stem in metas and ext in (CODE, META) and stem.endswith("." + self.tag)
            key = stem if current else name
            item = items.get(key)
            if item is None:
                items[key] = _Item((name,), st.st_size, st.st_mtime, current)
            else:
                files_ = (*item.files, name) if ext == CODE else (name, *item.files)
                used = st.st_mtime if ext == META else item.used
                items[key] = _Item(files_, item.size + st.st_size, used, current)
        return items
