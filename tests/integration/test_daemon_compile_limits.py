"""Compilation in bounded worker processes, and loading through the content-addressed cache."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from daemon_kit import Env, drop, in_process, plugin, plugin_wat

from forgeoned.adapters.wasm.compile_worker import CompileWorkers, ModuleCache, WorkerLimits
from forgeoned.adapters.wasm.module_source import load_module
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.errors import CompileLimitError, MalformedModuleError


@cache
def huge(instructions: int) -> bytes:
    """A valid plugin with one very long function: slow and memory-hungry to compile."""
    body = "(local.set $x (i32.add (local.get $x) (i32.const 1)))\n" * instructions
    fn = f'(func $big (export "big") (param $x i32) (result i32) {body} (local.get $x))'
    base = plugin_wat("huge")
    return bytes(wasmtime.wat2wasm(base[:-1] + fn + ")"))


SMALL = bytes(wasmtime.wat2wasm(plugin_wat("small")))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def runtime() -> Iterator[WasmtimeRuntime]:
    rt = WasmtimeRuntime()
    yield rt
    rt.close()


def workers(cache_dir: Path | None = None, **limits: Any) -> CompileWorkers:
    lim = WorkerLimits(**{"workers": 1, **limits})
    return CompileWorkers(lim, ModuleCache(cache_dir) if cache_dir else None)


def test_compiles_in_a_worker_and_the_result_loads(runtime: WasmtimeRuntime) -> None:
    pool = workers()
    try:
        native = pool.compile(SMALL)
        module = runtime.deserialize(native.code, native.interface)
        assert module.has_handle
        assert module.interface == runtime.compile(SMALL).interface
        assert pool.compiled == 1
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"timeout_s": 0.3}, "time limit of 0.3s"),
        ({"cpu_seconds": 1}, "CPU time limit of 1s"),
        ({"memory_bytes": 256 << 20}, "memory limit of 268435456 bytes"),
    ],
    ids=["wall-clock", "cpu", "memory"],
)
def test_compile_over_its_limits_is_stopped_and_the_pool_recovers(
    runtime: WasmtimeRuntime, limits: dict[str, Any], message: str
) -> None:
    pool = workers(**limits)
    try:
        big = huge(120_000 if "cpu_seconds" in limits else 50_000)
        with pytest.raises(CompileLimitError) as info:
            pool.compile(big)
        assert message in str(info.value)
        assert info.value.code == "compile_limit"
        assert load_module(runtime, pool, SMALL, sha(SMALL)).has_handle
    finally:
        pool.close()


def test_a_slow_worker_start_is_not_counted_in_the_compile_time_limit(
    tmp_path: Path, runtime: WasmtimeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's Python start is made slower than the limit (a busy machine): the limit
    # applies to the compile, which starts once the worker said it is ready.
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(0.6)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    pool = workers(timeout_s=0.3)
    try:
        assert load_module(runtime, pool, SMALL, sha(SMALL)).has_handle
        assert pool.compiled == 1
    finally:
        pool.close()


def test_a_module_the_compiler_refuses_is_a_clear_error(
    tmp_path: Path, runtime: WasmtimeRuntime
) -> None:
    pool = workers(tmp_path)
    try:
        with pytest.raises(MalformedModuleError, match="not a WebAssembly binary"):
            load_module(runtime, pool, b"garbage", sha(b"garbage"))
        assert list(tmp_path.iterdir()) == []  # nothing cached
    finally:
        pool.close()


def test_cache_hit_skips_the_worker_and_a_corrupt_entry_is_recompiled(
    tmp_path: Path, runtime: WasmtimeRuntime
) -> None:
    pool = workers(tmp_path)
    try:
        first = load_module(runtime, pool, SMALL, sha(SMALL))
        again = load_module(runtime, pool, SMALL, sha(SMALL))
        assert (pool.compiled, pool.cache_hits) == (1, 1)
        assert again.interface == first.interface
        [entry] = list(tmp_path.glob("*.cwasm"))
        raw = bytearray(entry.read_bytes())
        raw[-10] ^= 0xFF
        entry.write_bytes(bytes(raw))
        assert load_module(runtime, pool, SMALL, sha(SMALL)).has_handle
        assert pool.compiled == 2
        assert entry.read_bytes() != bytes(raw)  # replaced by a good entry
    finally:
        pool.close()


def test_daemon_rejects_a_compile_over_limits_and_keeps_serving(tmp_path: Path) -> None:
    from daemon_kit import KEY

    env = Env(tmp_path)
    env.write_config("[compile]\ntimeout_s = 0.3")
    drop(env.plugins, "huge.wasm", plugin("huge", "1.0.0"))
    with in_process(env) as d:
        bad = make_signed_plugin(huge(50_000), {"name": "huge", "version": "2.0.0", "abi": 1}, KEY)
        drop(env.plugins, "huge.wasm", bad)
        [event] = d.events.wait("plugin.rejected", "huge")
        assert event.reason == "compile_limit" and "time limit" in event.message
        assert d.parts.stats.rejected["compile_limit"] == 1
        assert d.invoke("huge") == b"huge@1.0.0:x"
        assert env.state()["active"]["huge"]["version"] == "1.0.0"


def test_daemon_evicts_cache_entries_no_version_uses_and_keeps_those_in_use(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    env.write_config("[compile]\ncache_max_bytes = 0")  # every entry over the cap
    cache_dir = tmp_path / "cache"
    v1, v2 = plugin("hello", "1.0.0"), plugin("hello", "2.0.0")

    def cached() -> set[str]:
        return {p.name.split(".")[0] for p in cache_dir.glob("*.cwasm")}

    def settled(d: Any) -> None:  # the loop trims before it takes each next job
        for _ in range(2):
            d.daemon.loop.call(lambda: None)

    drop(env.plugins, "hello.wasm", v1)
    with in_process(env) as d:
        assert cached() == {sha(v1)}  # over the cap, but it runs
        drop(env.plugins, "hello.wasm", v2)
        d.events.wait("plugin.upgraded", "hello")
        settled(d)
        assert cached() == {sha(v2)}  # the version it replaced is gone
        assert d.invoke("hello") == b"hello@2.0.0:x"
    with in_process(env) as d:  # a restart maps the kept entry again (no compile)
        assert d.parts.workers.compiled == 0 and d.parts.workers.cache_hits == 1
        (env.plugins / "hello.wasm").unlink()
        d.events.wait("plugin.removed", "hello")
        settled(d)
        assert cached() == set()


def test_a_cached_module_is_mapped_from_its_file_not_copied(
    tmp_path: Path, runtime: WasmtimeRuntime
) -> None:
    # The native code stays file-backed (page cache): the daemon holds no copy of its own.
    pool = workers(tmp_path)
    try:
        module = load_module(runtime, pool, SMALL, sha(SMALL))  # compiled, cached, mapped
        assert pool.cache is not None
        entry = str(pool.cache.path(sha(SMALL)))
        assert entry in Path("/proc/self/maps").read_text()
        again = load_module(runtime, pool, SMALL, sha(SMALL))  # a hit: mapped again
        assert (pool.compiled, pool.cache_hits) == (1, 1)
        assert again.interface == module.interface
    finally:
        pool.close()
