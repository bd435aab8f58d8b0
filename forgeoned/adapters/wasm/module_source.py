"""Where a plugin's compiled module comes from: the compile cache, mapped; else a worker.

A hit is mapped from its cache file (:meth:`WasmtimeRuntime.deserialize_file`) with the
interface kept in the entry, so a warm load neither copies the native code into the daemon
nor asks wasmtime for the module's types. A miss is compiled in a bounded worker, written to
the cache and then mapped from there like a hit; only without a cache (or when it cannot be
written, e.g. a full disk) is the code loaded from memory. An entry wasmtime or the ABI check
refuses is dropped and the module compiled again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from forgeoned.adapters.wasm.compile_worker import CompileWorkers
from forgeoned.adapters.wasm.module_cache import ModuleCache
from forgeoned.adapters.wasm.runtime import CompiledModule, WasmtimeRuntime
from forgeoned.errors import LoadError

Admit = Callable[[int], None]  # raises if native code of that many bytes may not be loaded


def _admit_any(size: int) -> None:
    return None


def _from_cache(
    runtime: WasmtimeRuntime, cache: ModuleCache, sha256: str, admit: Admit
) -> CompiledModule | None:
    hit = cache.get(sha256)
    if hit is None:
        return None
    with hit:
        admit(hit.size)
        try:
            return runtime.deserialize_file(hit.path, hit.interface)
        except LoadError:  # another engine's code, or an ABI rule it no longer meets
            cache.drop(sha256)
            return None


def load_module(
    runtime: WasmtimeRuntime,
    workers: CompileWorkers,
    wasm: bytes,
    sha256: str,
    admit: Admit = _admit_any,
) -> CompiledModule:
    """The compiled module of ``wasm`` (whose SHA-256 is ``sha256``); ``admit`` sees the size
    of its native code before it is loaded. Raises LoadError or ArtifactError."""
    cache = workers.cache
    if cache is not None:
        module = _from_cache(runtime, cache, sha256, admit)
        if module is not None:
            workers.cache_hits += 1
            return module
    native = workers.compile(wasm)
    admit(len(native.code))
    if cache is not None:
        with contextlib.suppress(OSError):  # a full disk only costs a recompile later
            cache.put(sha256, native)
            module = _from_cache(runtime, cache, sha256, admit)
            if module is not None:
                return module
    return runtime.deserialize(native.code, native.interface)
