"""Plugin call overhead: forgeoned's runtime vs wasmtime-py's high-level API vs extism.

Measures, in one run and on the same machine:

- host→plugin: one call of an exported ``add(i32, i32) -> i32`` (extism: one
  ``Plugin.call`` of an export that does nothing, with empty input — extism exports take no
  arguments, so this is its cheapest possible call);
- plugin→host: one call of a host function ``() -> i64`` from inside wasm (forgeoned: the real
  ``forgeone.time_now_ms``, capability check and counter included), measured as
  (time of an export looping N host calls minus the same export with N = 0) / N.

- a plugin metric update: one ``forgeone.metric_add`` of a declared counter with one label
  (``hits{verdict="allow"}``), measured like the host call above and in the same run, beside
  ``time_now_ms`` (forgeoned only: the peers have no such hook);
- ``http_request``: one outbound request through the host hook to a local server beside the
  same request made by a raw ``httpcore`` client (``bench/http_hook.py``), so the hook's own
  cost shows as the difference;
- instantiate + ``init``: a new sandboxed instance of a compiled ABI v1 module that imports
  the nine ABI v1 host functions of DESIGN.md section 3 (the host defines fourteen: those
  nine, ``config_get``, the three metric calls and ``http_request``; the Rust sample imports
  twelve), then its ``init`` export: what the daemon pays per plugin at start once the
  module is compiled (forgeoned only).

forgeoned and wasmtime-py run the same ABI v1 module; extism needs its own ABI (imports from
``extism:host/*``), so it runs an equivalent minimal module. Each figure is the best of
several rounds, in thread CPU time (``time.thread_time``: on a shared machine, the time
this thread spent waiting for a core is not a cost of the call) with the median and the
best wall-clock figure next to it. Run: ``.venv/bin/python bench/calls.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import extism
import wasmtime

from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.wasm import fastcall as fast
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent
from forgeoned.core.manifest import Capabilities, Limits
from forgeoned.core.manifest_parse import parse_manifest_obj
from forgeoned.core.plugin_metrics import PluginMetricSet
from forgeoned.core.stats import PluginStats

ABI_V1_MODULE = """
(module
  (import "forgeone" "time_now_ms" (func $now (result i64)))
  (memory (export "memory") 1)
  (func (export "init") (result i32) i32.const 0)
  (func (export "start") (result i32) i32.const 0)
  (func (export "stop") (result i32) i32.const 0)
  (func (export "pause") (result i32) i32.const 0)
  (func (export "resume") (result i32) i32.const 0)
  (func (export "unload") (result i32) i32.const 0)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "hc") (param $n i32) (result i32)
    (block (loop
      (br_if 1 (i32.eqz (local.get $n)))
      (drop (call $now))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br 0)))
    i32.const 0))
"""

METRIC_MODULE = """
(module
  (import "forgeone" "metric_add" (func $add (param i32 i32 i32 i32 f64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hits")
  (data (i32.const 32) "verdict=allow")
  (func (export "init") (result i32) i32.const 0)
  (func (export "start") (result i32) i32.const 0)
  (func (export "stop") (result i32) i32.const 0)
  (func (export "pause") (result i32) i32.const 0)
  (func (export "resume") (result i32) i32.const 0)
  (func (export "unload") (result i32) i32.const 0)
  (func (export "mc") (param $n i32) (result i32)
    (block (loop
      (br_if 1 (i32.eqz (local.get $n)))
      (drop (call $add (i32.const 16) (i32.const 4) (i32.const 32) (i32.const 13)
                       (f64.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br 0)))
    i32.const 0))
"""
METRICS = {"hits": {"type": "counter", "labels": {"verdict": ["allow", "deny"]}}}

EXTISM_MODULE = """
(module
  (import "extism:host/env" "input_load_u64" (func $input_u64 (param i64) (result i64)))
  (import "extism:host/user" "now" (func $now (result i64)))
  (memory (export "memory") 1)
  (func (export "noop") (result i32) i32.const 0)
  (func (export "hc") (result i32) (local $n i64)
    (local.set $n (call $input_u64 (i64.const 0)))
    (block (loop
      (br_if 1 (i64.eqz (local.get $n)))
      (drop (call $now))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br 0)))
    i32.const 0))
"""

NOW_MS = 1_700_000_000_000

_IMPORTS = {
    "log": "(param i32 i32 i32) (result i32)",
    "env_get": "(param i32 i32 i32 i32) (result i32)",
    "secret_get": "(param i32 i32 i32 i32) (result i32)",
    "time_now_ms": "(result i64)",
    "random_fill": "(param i32 i32) (result i32)",
    "kv_get": "(param i32 i32 i32 i32) (result i32)",
    "kv_set": "(param i32 i32 i32 i32) (result i32)",
    "kv_delete": "(param i32 i32) (result i32)",
    "output": "(param i32 i32) (result i32)",
}
ALL_IMPORTS_MODULE = (
    "(module "
    + " ".join(f'(import "forgeone" "{n}" (func {sig}))' for n, sig in _IMPORTS.items())
    + ' (memory (export "memory") 1)'
    + "".join(
        f' (func (export "{e}") (result i32) i32.const 0)'
        for e in ("init", "start", "stop", "pause", "resume", "unload")
    )
    + ")"
)


class NullAudit:
    def record(self, event: AuditEvent) -> None:
        raise AssertionError(f"unexpected audit event {event}")


Figure = dict[str, float]


def _summarise(wall: list[float], cpu: list[float]) -> Figure:
    return {
        "cpu_best": min(cpu),
        "cpu_median": statistics.median(cpu),
        "wall_best": min(wall),
        "wall_median": statistics.median(wall),
    }


def per_call(fn: Callable[[], Any], calls: int, rounds: int) -> Figure:
    """µs per call of ``fn`` over ``rounds`` rounds of ``calls`` calls (thread CPU and wall)."""
    wall, cpu = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            fn()
        cpu.append((time.thread_time() - c0) / calls * 1e6)
        wall.append((time.perf_counter() - w0) / calls * 1e6)
    return _summarise(wall, cpu)


def per_hostcall(run: Callable[[int], Any], n: int, rounds: int) -> Figure:
    """µs per host call: (run(n) - run(0)) / n, in thread CPU time and wall time."""
    wall, cpu = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.thread_time()
        run(0)
        w1, c1 = time.perf_counter(), time.thread_time()
        run(n)
        w2, c2 = time.perf_counter(), time.thread_time()
        cpu.append(((c2 - c1) - (c1 - c0)) / n * 1e6)
        wall.append(((w2 - w1) - (w1 - w0)) / n * 1e6)
    return _summarise(wall, cpu)


def per_instance(make: Callable[[], Any], count: int, rounds: int) -> Figure:
    """µs per ``make()`` (instantiate + init), ``count`` live instances per round; the
    instances are closed after each round, outside the timing."""
    wall, cpu = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.thread_time()
        live = [make() for _ in range(count)]
        cpu.append((time.thread_time() - c0) / count * 1e6)
        wall.append((time.perf_counter() - w0) / count * 1e6)
        for inst in live:
            inst.close()
    return _summarise(wall, cpu)


def bench_forgeoned(wasm: bytes, calls: int, hostcalls: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, WasmtimeRuntime() as runtime:
        stats = PluginStats()
        services = HostServices(
            plugin="bench",
            version="1.0.0",
            capabilities=Capabilities(clock=True),
            env={},
            secrets_dir=None,
            kv=KvStore(Path(tmp), 0),
            audit=NullAudit(),
            log=lambda plugin, level, message: None,
            clock=SystemClock(),
            stats=stats,
        )
        limits = Limits(fuel_per_call=10**12, call_timeout_ms=600_000)
        decls = parse_manifest_obj(
            {"name": "bench", "version": "1.0.0", "abi": 1, "metrics": METRICS}
        ).metrics
        metric_services = replace(
            services,
            capabilities=Capabilities(clock=True, metrics=True),
            metrics=PluginMetricSet(decls),
        )
        metric_module = runtime.compile(bytes(wasmtime.wat2wasm(METRIC_MODULE)))
        with (
            runtime.instantiate(runtime.compile(wasm), limits, services) as inst,
            runtime.instantiate(metric_module, limits, metric_services) as minst,
        ):
            add = inst.export_i32("add")
            assert add(1, 2) == 3
            hc = inst.export_i32("hc")
            mc = minst.export_i32("mc")
            call = per_call(lambda: add(1, 2), calls, rounds)
            host = per_hostcall(hc, hostcalls, rounds)
            metric = per_hostcall(mc, hostcalls, rounds)
            # The floor: the same C call with no fuel, deadline or accounting around it.
            func = inst._funcs["add"]
            ctx = inst._ctx
            args = (ctx, func.func, func.raw_addr, func.slots, func.trap_addr)
            floor = per_call(lambda: fast.call_unchecked(*args), calls, rounds)
        assert stats.hostcalls[("time_now_ms", "ok")] >= hostcalls * rounds
        assert stats.totals().hostcalls[("metric_add", "ok")] >= hostcalls * rounds
        full = runtime.compile(bytes(wasmtime.wat2wasm(ALL_IMPORTS_MODULE)))

        def make() -> Any:
            inst = runtime.instantiate(full, Limits(), services)
            inst.call(LifecycleExport.INIT)
            return inst

        instantiate = per_instance(make, max(50, calls // 100), rounds)
    return {
        "call": call,
        "hostcall": host,
        "metric_add": metric,
        "floor": floor,
        "instantiate": instantiate,
    }


def bench_wasmtime_py(wasm: bytes, calls: int, hostcalls: int, rounds: int) -> dict[str, Any]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    i64 = wasmtime.ValType.i64()
    linker.define_func("forgeone", "time_now_ms", wasmtime.FuncType([], [i64]), lambda: NOW_MS)
    exports = linker.instantiate(store, wasmtime.Module(engine, wasm)).exports(store)
    add, hc = exports["add"], exports["hc"]
    assert isinstance(add, wasmtime.Func) and isinstance(hc, wasmtime.Func)
    assert add(store, 1, 2) == 3
    call = per_call(lambda: add(store, 1, 2), calls, rounds)
    host = per_hostcall(lambda n: hc(store, n), hostcalls, rounds)
    return {"call": call, "hostcall": host}


def bench_extism(calls: int, hostcalls: int, rounds: int) -> dict[str, Any]:
    def now_impl(_plugin: Any, _params: Any, results: Any, *_user: Any) -> None:
        results[0].value = NOW_MS

    now = extism.host_fn(name="now", signature=([], [extism.ValType.I64]))(now_impl)

    wasm = bytes(wasmtime.wat2wasm(EXTISM_MODULE))
    with extism.Plugin(wasm, wasi=False, functions=[now]) as plugin:
        assert plugin.call("noop", b"") == b""
        call = per_call(lambda: plugin.call("noop", b""), calls, rounds)
        host = per_hostcall(lambda n: plugin.call("hc", struct.pack("<Q", n)), hostcalls, rounds)
    return {"call": call, "hostcall": host}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    calls, hostcalls, rounds = (2_000, 2_000, 3) if args.quick else (30_000, 50_000, 5)
    wasm = bytes(wasmtime.wat2wasm(ABI_V1_MODULE))
    results = {
        "forgeoned": bench_forgeoned(wasm, calls, hostcalls, rounds),
        "wasmtime-py": bench_wasmtime_py(wasm, calls, hostcalls, rounds),
        "extism": bench_extism(calls, hostcalls, rounds),
    }
    ours = results["forgeoned"]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.http_hook import bench as bench_http

    http = bench_http(*((100, 3) if args.quick else (1_000, 5)), per_call)
    ratios = {
        peer: {
            kind: results[peer][kind]["cpu_best"] / ours[kind]["cpu_best"]
            for kind in ("call", "hostcall")
        }
        for peer in ("wasmtime-py", "extism")
    }
    if args.json:
        out = {"us_per_call": results, "ratios": ratios, "us_per_http_request": http}
        print(json.dumps(out, indent=2))
        return 0
    print(f"extism runtime {extism.extism_version()}, python {sys.version.split()[0]}; "
          "µs per call, thread CPU time best (median), wall-clock best in brackets")  # fmt: skip
    print(f"{'path':<14}{'host→plugin':>30}{'plugin→host':>30}")

    def cell(f: Figure) -> str:
        return f"{f['cpu_best']:.2f} ({f['cpu_median']:.2f}) [{f['wall_best']:.2f}]"

    for name, figures in results.items():
        host = cell(figures["hostcall"]) if "hostcall" in figures else ""
        print(f"{name:<14}{cell(figures['call']):>30}{host:>30}")
    print(f"{'C API floor':<14}{cell(ours['floor']):>30}")
    print(f"{'metric_add':<14}{'':>30}{cell(ours['metric_add']):>30}")
    print(f"forgeoned instantiate + init: {cell(ours['instantiate'])} µs per instance")
    print(f"http_request via the hook: {cell(http['hook'])} µs per request")
    print(f"raw httpcore request:      {cell(http['raw'])} µs (same local server, run and way)")
    for peer, r in ratios.items():
        print(f"forgeoned vs {peer}: {r['call']:.1f}x less per call, "
              f"{r['hostcall']:.1f}x less per host call (CPU time, best rounds)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
