"""The raw C-API call path against wasmtime-py's high-level API on the same module.

The fast path uses non-public wasmtime-py names (pinned to wasmtime 50.0.1, checked when it is
imported: test_runtime_version.py): these tests are what would catch a layout or semantics
change on an upgrade.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_wat import make_host, plugin_wat

from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.manifest import Limits

ARITH = (
    '(func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)'
    '(func (export "sub") (param i32 i32) (result i32) local.get 0 local.get 1 i32.sub)'
    '(func (export "mul") (param i32 i32) (result i32) local.get 0 local.get 1 i32.mul)'
    '(func (export "shr") (param i32 i32) (result i32) local.get 0 local.get 1 i32.shr_u)'
    '(func (export "neg") (param i32) (result i32) i32.const 0 local.get 0 i32.sub)'
    '(func (export "seven") (result i32) i32.const 7)'
    '(func (export "clock") (result i32) call $time_now_ms i64.const 7 i64.rem_u i32.wrap_i64)'
    '(func (export "hc") (param i32) (result i32) (local i32)'
    "  (loop call $time_now_ms drop local.get 1 i32.const 1 i32.add local.tee 1"
    "        local.get 0 i32.lt_u br_if 0) local.get 1)"
)
EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 12345, -99999, 31, 32]


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime() as rt:
        yield rt


def test_fast_path_matches_high_level_path(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    wasm = plugin_wat(imports=("time_now_ms",), extra=ARITH)
    host = make_host(tmp_path)
    host.clock.advance(3.0)

    # The reference: a plain wasmtime-py store and a high-level host function.
    config = wasmtime.Config()
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    now_ms = int(host.clock.wall() * 1000)
    linker.define_func(
        "forgeone", "time_now_ms", wasmtime.FuncType([], [wasmtime.ValType.i64()]), lambda: now_ms
    )
    reference = linker.instantiate(store, wasmtime.Module(engine, wasm)).exports(store)

    def ref(name: str, *args: int) -> int:
        func = reference[name]
        assert isinstance(func, wasmtime.Func)
        result = func(store, *args)
        assert isinstance(result, int)
        return result

    with runtime.instantiate(runtime.compile(wasm), Limits(), host.services) as inst:
        for name in ("add", "sub", "mul", "shr"):
            fast = inst.export_i32(name)
            for a in EDGES:
                for b in EDGES:
                    assert fast(a, b) == ref(name, a, b) == inst.call_i32(name, a, b)
        for a in EDGES:
            assert inst.call_i32("neg", a) == ref("neg", a)
        assert inst.call_i32("seven") == ref("seven") == 7
        assert inst.call_i32("clock") == ref("clock") == now_ms % 7
        assert inst.call_i32("hc", 1000) == ref("hc", 1000) == 1000
    calls = len(EDGES) ** 2 * 2 * 4 + len(EDGES) + 3
    assert sum(host.stats.calls.values()) == calls
    assert host.stats.hostcalls[("time_now_ms", "ok")] == 1001
    assert host.stats.call_duration.count == calls
    assert host.stats.fuel_consumed > 0


def test_results_do_not_leak_between_calls(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    host = make_host(tmp_path)
    wasm = plugin_wat(imports=("time_now_ms",), extra=ARITH)
    with runtime.instantiate(runtime.compile(wasm), Limits(), host.services) as inst:
        add = inst.export_i32("add")
        assert [add(i, i) for i in range(100)] == [2 * i for i in range(100)]


def test_two_instances_have_separate_stores(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    counter = (
        "(global $n (mut i32) (i32.const 0))"
        '(func (export "bump") (result i32) global.get $n i32.const 1 i32.add global.set $n'
        " global.get $n)"
    )
    module = runtime.compile(plugin_wat(extra=counter))
    host = make_host(tmp_path)
    with (
        runtime.instantiate(module, Limits(), host.services) as a,
        runtime.instantiate(module, Limits(), host.services) as b,
    ):
        assert [a.call_i32("bump") for _ in range(3)] == [1, 2, 3]
        assert b.call_i32("bump") == 1


@functools.cache
def _pair(tmp: str) -> tuple[Any, Any, Any]:
    """A forgeoned instance and a plain wasmtime-py instance of the same module (cached)."""
    runtime = WasmtimeRuntime()
    wasm = plugin_wat(imports=("time_now_ms",), extra=ARITH)
    inst = runtime.instantiate(runtime.compile(wasm), Limits(), make_host(Path(tmp)).services)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    i64 = wasmtime.ValType.i64()
    linker.define_func("forgeone", "time_now_ms", wasmtime.FuncType([], [i64]), lambda: 0)
    exports = linker.instantiate(store, wasmtime.Module(engine, wasm)).exports(store)
    return inst, store, exports


I32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["add", "sub", "mul", "shr"]), a=I32, b=I32)
def test_fast_path_property(
    tmp_path_factory: pytest.TempPathFactory, name: str, a: int, b: int
) -> None:
    inst, store, exports = _pair(str(tmp_path_factory.getbasetemp() / "property"))
    assert inst.export_i32(name)(a, b) == exports[name](store, a, b)
