"""Limits and traps in real wasmtime: every one is a typed PluginTrap and the host survives.

Wall-clock bounds here are deliberately loose (seconds, not the epoch tick): they only prove a
runaway call is stopped, not how fast; the tick-level figure is measured in bench/calls.py.
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_wat import assert_runtime_healthy, make_host, plugin_wat

from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.manifest import WASM_PAGE, Limits
from forgeoned.errors import (
    ApplicationError,
    ConflictError,
    LoadError,
    PluginStatusError,
    PluginTrap,
    TrapKind,
)

TICK = 0.005
SPIN = "(loop br 0) i32.const 0"
EXPORTS = [e.value for e in LifecycleExport] + ["handle", "tick"]
NO_FUEL_LIMIT = 10**12


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime(epoch_interval_s=TICK) as rt:
        yield rt


def module_with(export: str, body: str) -> bytes:
    """A plugin whose ``export`` runs ``body`` (an i32-producing instruction sequence)."""
    if export == "handle":
        return plugin_wat(handle=body)
    if export == "tick":
        return plugin_wat(extra=f'(func (export "tick") (result i32) {body})')
    return plugin_wat(bodies={export: body})


def invoke(inst: object, export: str) -> None:
    from forgeoned.adapters.wasm.instance import PluginInstance

    assert isinstance(inst, PluginInstance)
    if export == "handle":
        inst.handle(b"input")
    elif export == "tick":
        inst.tick()
    else:
        inst.call(LifecycleExport(export))


@pytest.mark.parametrize("export", EXPORTS)
def test_infinite_loop_hits_the_deadline(
    runtime: WasmtimeRuntime, tmp_path: Path, export: str
) -> None:
    host = make_host(tmp_path)
    limits = Limits(call_timeout_ms=50, fuel_per_call=NO_FUEL_LIMIT)
    with runtime.instantiate(
        runtime.compile(module_with(export, SPIN)), limits, host.services
    ) as i:
        started = time.monotonic()
        with pytest.raises(PluginTrap) as info:
            invoke(i, export)
        elapsed = time.monotonic() - started
    assert info.value.kind is TrapKind.DEADLINE
    assert info.value.export == export
    assert str(info.value).startswith(f"plugin t: '{export}' trapped (deadline)")
    assert 0.05 <= elapsed < 5.0  # never early; stopped (the tick-level bound: bench)
    assert host.stats.calls[(export, "deadline")] == 1
    assert_runtime_healthy(runtime, tmp_path)


@pytest.mark.parametrize("export", EXPORTS)
def test_unreachable_traps(runtime: WasmtimeRuntime, tmp_path: Path, export: str) -> None:
    host = make_host(tmp_path)
    module = runtime.compile(module_with(export, "unreachable"))
    with runtime.instantiate(module, Limits(), host.services) as inst:
        with pytest.raises(PluginTrap, match="unreachable") as info:
            invoke(inst, export)
        assert info.value.kind is TrapKind.UNREACHABLE
        assert host.stats.calls[(export, "unreachable")] == 1
    assert_runtime_healthy(runtime, tmp_path)


@pytest.mark.parametrize("export", EXPORTS)
def test_non_zero_status(runtime: WasmtimeRuntime, tmp_path: Path, export: str) -> None:
    host = make_host(tmp_path)
    module = runtime.compile(module_with(export, "i32.const -7"))
    with runtime.instantiate(module, Limits(), host.services) as inst:
        # handle and tick answer (an application error); a lifecycle export fails
        expected = ApplicationError if export in ("handle", "tick") else PluginStatusError
        with pytest.raises(expected) as info:
            invoke(inst, export)
        error = info.value
        assert isinstance(error, ApplicationError | PluginStatusError)
        assert (error.export, error.status) == (export, -7)
        assert f"{export!r} returned status -7" in str(error)
        assert host.stats.calls[(export, "error")] == 1
        for other in LifecycleExport:  # the instance itself is still usable
            if other.value != export:
                inst.call(other)
    assert_runtime_healthy(runtime, tmp_path)


def test_out_of_fuel(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    host = make_host(tmp_path)
    limits = Limits(fuel_per_call=10_000, call_timeout_ms=60_000)
    with runtime.instantiate(
        runtime.compile(module_with("start", SPIN)), limits, host.services
    ) as i:
        i.call(LifecycleExport.INIT)
        used_by_init = host.stats.fuel_consumed
        assert 0 < used_by_init < 10_000
        with pytest.raises(PluginTrap, match="out_of_fuel") as info:
            i.call(LifecycleExport.START)
        assert info.value.kind is TrapKind.OUT_OF_FUEL
        assert host.stats.fuel_consumed == used_by_init + 10_000
        i.call(LifecycleExport.STOP)  # fuel is refilled for the next call
    assert_runtime_healthy(runtime, tmp_path)


def test_unbounded_recursion_is_a_stack_overflow_trap(
    runtime: WasmtimeRuntime, tmp_path: Path
) -> None:
    extra = "(func $deep (param i32) (result i32) local.get 0 i32.const 1 i32.add call $deep)"
    wasm = plugin_wat(bodies={"init": "i32.const 0 call $deep"}, extra=extra)
    host = make_host(tmp_path)
    limits = Limits(fuel_per_call=NO_FUEL_LIMIT)
    with runtime.instantiate(runtime.compile(wasm), limits, host.services) as inst:
        with pytest.raises(PluginTrap, match="stack_overflow") as info:
            inst.call(LifecycleExport.INIT)
        assert info.value.kind is TrapKind.STACK_OVERFLOW
    assert_runtime_healthy(runtime, tmp_path)


def test_memory_grow_past_the_cap_fails_in_wasm(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    extra = '(func (export "grow") (param i32) (result i32) local.get 0 memory.grow)'
    host = make_host(tmp_path)
    limits = Limits(memory_bytes=3 * WASM_PAGE)
    with runtime.instantiate(runtime.compile(plugin_wat(extra=extra)), limits, host.services) as i:
        assert i.memory_bytes == WASM_PAGE
        assert i.call_i32("grow", 2) == 1  # old size in pages: now at the cap
        assert i.call_i32("grow", 1) == -1  # past the cap: memory.grow says no
        assert i.call_i32("grow", 65536) == -1
        assert i.memory_bytes == 3 * WASM_PAGE
        i.call(LifecycleExport.INIT)  # and the plugin carries on
    assert_runtime_healthy(runtime, tmp_path)


@pytest.mark.parametrize("pages", [257, 65536])  # 16 MiB + 1 page; the whole 4 GiB
def test_declared_minimum_over_the_cap_does_not_instantiate(
    runtime: WasmtimeRuntime, tmp_path: Path, pages: int
) -> None:
    wasm = plugin_wat(memory=f'(memory (export "memory") {pages})')
    module = runtime.compile(wasm)
    host = make_host(tmp_path)
    with pytest.raises(LoadError) as info:
        runtime.instantiate(module, Limits(memory_bytes=256 * WASM_PAGE), host.services)
    assert str(info.value) == (
        f"memory 'memory' declares a minimum of {pages * WASM_PAGE} bytes, "
        f"over the plugin's memory cap of {256 * WASM_PAGE} bytes"
    )
    assert host.stats.calls == {}
    assert_runtime_healthy(runtime, tmp_path)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("i32.const 1 i32.const 0 i32.div_s", TrapKind.INTEGER_DIVIDE_BY_ZERO),
        ("i32.const -4 i32.load", TrapKind.MEMORY_OUT_OF_BOUNDS),
        ("i32.const 0 call_indirect (result i32)", TrapKind.INDIRECT_CALL),
    ],
)
def test_other_traps_are_typed(
    runtime: WasmtimeRuntime, tmp_path: Path, body: str, kind: TrapKind
) -> None:
    wasm = plugin_wat(bodies={"init": body}, extra="(table 1 funcref)")
    host = make_host(tmp_path)
    with runtime.instantiate(runtime.compile(wasm), Limits(), host.services) as inst:
        with pytest.raises(PluginTrap) as info:
            inst.call(LifecycleExport.INIT)
        assert info.value.kind is kind
        assert host.stats.calls[("init", kind.value)] == 1


def test_interrupt_from_another_thread(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    # The plugin logs once and then spins; the log line tells the helper thread it is running.
    running = threading.Event()
    host = make_host(tmp_path)
    services = dataclasses.replace(host.services, log=lambda plugin, level, msg: running.set())
    body = "i32.const 1 i32.const 0 i32.const 0 call $log drop (loop br 0) i32.const 0"
    wasm = plugin_wat(imports=("log",), bodies={"stop": body})
    limits = Limits(call_timeout_ms=600_000, fuel_per_call=NO_FUEL_LIMIT)
    with runtime.instantiate(runtime.compile(wasm), limits, services) as inst:
        inst.interrupt()  # while idle: no effect on the next call
        inst.call(LifecycleExport.INIT)

        def interrupter() -> None:
            assert running.wait(30)
            inst.interrupt()

        helper = threading.Thread(target=interrupter)
        helper.start()
        with pytest.raises(PluginTrap, match="interrupted") as info:
            inst.call(LifecycleExport.STOP)
        helper.join()
        assert info.value.kind is TrapKind.INTERRUPTED
        assert host.stats.calls[("stop", "interrupted")] == 1
        inst.call(LifecycleExport.UNLOAD)  # the flag does not leak into the next call
    assert_runtime_healthy(runtime, tmp_path)


@pytest.mark.parametrize(("body", "kind"), [(SPIN, TrapKind.DEADLINE), ("unreachable", None)])
def test_start_function_runs_under_the_limits(
    runtime: WasmtimeRuntime, tmp_path: Path, body: str, kind: TrapKind | None
) -> None:
    extra = f"(func $boot {body.replace(' i32.const 0', '')}) (start $boot)"
    wasm = plugin_wat(extra=extra)
    host = make_host(tmp_path)
    limits = Limits(call_timeout_ms=50, fuel_per_call=NO_FUEL_LIMIT)
    with pytest.raises(PluginTrap) as info:
        runtime.instantiate(runtime.compile(wasm), limits, host.services)
    assert info.value.kind is (kind or TrapKind.UNREACHABLE)
    assert info.value.export == "(start)"
    assert_runtime_healthy(runtime, tmp_path)


def test_alloc_returning_a_pointer_outside_memory(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    extra = (
        '(func (export "alloc") (param i32) (result i32) i32.const -16)'
        '(func (export "handle") (param i32 i32) (result i32) i32.const 0)'
    )
    host = make_host(tmp_path)
    with runtime.instantiate(
        runtime.compile(plugin_wat(extra=extra)), Limits(), host.services
    ) as i:
        with pytest.raises(PluginTrap, match=r"alloc\(5\) returned 4294967280, outside") as info:
            i.handle(b"input")
        assert info.value.kind is TrapKind.MEMORY_OUT_OF_BOUNDS
        assert host.stats.calls[("handle", "ok")] == 0


def test_host_exception_becomes_a_host_error_trap(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    def broken_log(plugin: str, level: int, message: str) -> None:
        raise RuntimeError("journal is gone")

    host = make_host(tmp_path)
    services = dataclasses.replace(host.services, log=broken_log)
    body = "i32.const 1 i32.const 0 i32.const 1 call $log"
    wasm = plugin_wat(imports=("log",), bodies={"init": body})
    with runtime.instantiate(runtime.compile(wasm), Limits(), services) as inst:
        with pytest.raises(PluginTrap, match="host error: journal is gone") as info:
            inst.call(LifecycleExport.INIT)
        assert info.value.kind is TrapKind.HOST_ERROR
        assert host.stats.hostcalls[("log", "error")] == 1
        inst.call(LifecycleExport.START)
    assert_runtime_healthy(runtime, tmp_path)


def test_closed_instance_refuses_calls(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    host = make_host(tmp_path)
    inst = runtime.instantiate(runtime.compile(plugin_wat()), Limits(), host.services)
    inst.close()
    inst.close()  # idempotent
    with pytest.raises(ConflictError, match="instance is closed"):
        inst.call(LifecycleExport.INIT)
    # exports are bound at first use: none may be looked up in the freed Store
    for never_bound in (lambda: inst.handle(b"x"), inst.tick, lambda: inst.call_i32("stop")):
        with pytest.raises(ConflictError, match="instance is closed"):
            never_bound()
    assert inst.memory_bytes == 0


def test_epoch_hook_traps_at_the_first_tick_past_the_deadline(
    runtime: WasmtimeRuntime, tmp_path: Path
) -> None:
    """The bound "call_timeout + one tick" without a wall-clock assertion: at every tick the
    hook either re-arms for the very next tick or, once the deadline has passed, stops."""
    from forgeoned.adapters.wasm import fastcall as fast

    host = make_host(tmp_path)
    with runtime.instantiate(runtime.compile(plugin_wat()), Limits(), host.services) as inst:
        delta, kind = ctypes.c_uint64(0), ctypes.c_uint8(7)
        hook = inst._on_epoch
        inst.prepare_entry()  # a call is running, deadline one call_timeout away
        assert hook(None, None, ctypes.pointer(delta), ctypes.pointer(kind)) == 0
        assert (delta.value, kind.value) == (1, 0)  # continue, check again next tick
        inst._deadline = time.perf_counter()  # the deadline has just passed
        error = hook(None, None, ctypes.pointer(delta), ctypes.pointer(kind))
        assert error != 0
        assert fast.consume_failure(error, None)[1] == "call exceeded its wall-clock deadline"
        inst.entry_done()
        inst.call(LifecycleExport.INIT)  # the next call is unaffected


def test_host_error_in_the_start_function(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    class BrokenClock:
        def monotonic(self) -> float:
            return 0.0

        def wall(self) -> float:
            raise OSError("no clock")

    host = make_host(tmp_path)
    services = dataclasses.replace(host.services, clock=BrokenClock())
    boot = "(func $boot call $time_now_ms drop) (start $boot)"
    wasm = plugin_wat(imports=("time_now_ms",), extra=boot)
    with pytest.raises(PluginTrap, match="host error: no clock") as info:
        runtime.instantiate(runtime.compile(wasm), Limits(), services)
    assert info.value.kind is TrapKind.HOST_ERROR
    assert info.value.export == "(start)"
    assert host.stats.hostcalls[("time_now_ms", "error")] == 1
    assert_runtime_healthy(runtime, tmp_path)
