"""Per-plugin counters stay exact when several instances of one plugin run at the same time.

Two instances of a plugin share its :class:`PluginStats` (``limits.instances > 1``, or the old
and the new version during a swap), and their calls run on different threads. Each test runs
the same work once on one thread, then on two instances in two threads at once, and compares
what a reader sees (:meth:`PluginHost.view`, as the metrics collector and the control API
read it). The switch interval is cut to 1 µs so that thread switches are frequent.

On CPython 3.11 an unlocked ``counter[key] += 1`` has no thread-switch point inside, but the
host-call counter's ``set(key, get(key, 0) + 1)`` has one (after the ``get`` call): with
shared counters, plain runs lose host-call counts in about half the runs, by luck of the
threads' phase. :class:`_SwitchingCounter` makes the window certain, for a test that fails
every time on shared counters: its reads give up the GIL (``time.sleep(0)``), as a forced
switch at that point would.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_wat import Host, make_host, plugin_wat

from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.runtime import CompiledModule, WasmtimeRuntime
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.manifest import Limits
from forgeoned.core.stats import PluginStats
from forgeoned.service.plugin_host import PluginHost

CALLS = 3_000  # `handle` calls per thread: each is 2 export calls and 3 host calls
HOST_LOOPS = 2_000  # `hc` calls per thread, each making 5 host calls
# handle: three host calls (two time_now_ms, one output of the input), then status 0.
WAT = plugin_wat(
    imports=("time_now_ms", "output", "random_fill"),
    handle="call $time_now_ms drop call $time_now_ms drop"
    " local.get $ptr local.get $len call $output",
    bodies={"init": "call $time_now_ms drop i32.const 0"},
    extra='(func (export "hc") (param i32) (result i32) (local i32)'
    "  (loop call $time_now_ms drop i32.const 0 i32.const 4 call $random_fill drop"
    "        local.get 1 i32.const 1 i32.add local.tee 1"
    "        local.get 0 i32.lt_u br_if 0) local.get 1)",
)


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime() as rt:
        yield rt


@pytest.fixture(scope="module")
def module(runtime: WasmtimeRuntime) -> CompiledModule:
    return runtime.compile(WAT)


@pytest.fixture(autouse=True)
def frequent_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class _SwitchingCounter(Counter[tuple[str, str]]):
    """A Counter whose reads let another thread run: every read-modify-write of it is
    interrupted, so two writers sharing it would lose increments each time."""

    def get(self, key: tuple[str, str], default: int = 0) -> int:  # type: ignore[override]
        value = super().get(key, default)
        time.sleep(0)  # releases the GIL: not a wait for anything
        return value

    def __getitem__(self, key: tuple[str, str]) -> int:
        value = super().__getitem__(key)
        time.sleep(0)
        return value


def _work(inst: PluginInstance) -> None:
    hc = inst.export_i32("hc")
    for i in range(CALLS):
        assert inst.handle(b"x" * (i % 7)) == b"x" * (i % 7)
        if i < HOST_LOOPS:
            assert hc(5) == 5


def _seen(stats: PluginStats) -> tuple[object, ...]:
    """What a reader of the plugin's view sees (the collector and `status` read this)."""
    view = PluginHost("t", stats).view().stats
    hist = view.call_duration
    return (
        dict(view.calls),
        dict(view.hostcalls),
        hist.count,
        sum(hist.counts),
        view.fuel_consumed,
    )


def _in_threads(jobs: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=30)
            job()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def _sequential(runtime: WasmtimeRuntime, module: CompiledModule, tmp: Path) -> Host:
    """The reference: the same work as two instances, one after the other on one thread."""
    host = make_host(tmp / "ref")
    for _ in range(2):
        with runtime.instantiate(module, Limits(), host.services) as inst:
            inst.call(LifecycleExport.INIT)
            _work(inst)
    return host


def test_two_instances_on_two_threads_lose_no_count(
    runtime: WasmtimeRuntime, module: CompiledModule, tmp_path: Path
) -> None:
    expected = _seen(_sequential(runtime, module, tmp_path).stats)
    calls, hostcalls, count, _, fuel = expected
    assert calls == {
        ("init", "ok"): 2,
        ("alloc", "ok"): 2 * CALLS,
        ("handle", "ok"): 2 * CALLS,
        ("hc", "ok"): 2 * HOST_LOOPS,
    }
    assert hostcalls == {
        ("time_now_ms", "ok"): 2 + 4 * CALLS + 10 * HOST_LOOPS,
        ("output", "ok"): 2 * CALLS,
        ("random_fill", "ok"): 10 * HOST_LOOPS,
    }
    assert count == 2 + 4 * CALLS + 2 * HOST_LOOPS and isinstance(fuel, int) and fuel > 0

    host = make_host(tmp_path / "shared")
    a = runtime.instantiate(module, Limits(), host.services)
    b = runtime.instantiate(module, Limits(), host.services)
    with a, b:
        a.call(LifecycleExport.INIT)
        b.call(LifecycleExport.INIT)
        _in_threads([lambda: _work(a), lambda: _work(b)])
        assert _seen(host.stats) == expected  # live, both instances still open
    assert _seen(host.stats) == expected  # and after both closed: nothing goes away


def test_exact_through_instance_churn(
    runtime: WasmtimeRuntime, module: CompiledModule, tmp_path: Path
) -> None:
    """One thread serves calls while another keeps instantiating, initialising and closing
    instances of the same plugin (a swap or a restart): every count survives."""
    host = make_host(tmp_path)
    rounds = 300

    def churn() -> None:
        for _ in range(rounds):
            with runtime.instantiate(module, Limits(), host.services) as inst:
                inst.call(LifecycleExport.INIT)
                assert inst.call_i32("hc", 3) == 3

    with runtime.instantiate(module, Limits(), host.services) as serving:
        _in_threads([lambda: _work(serving), churn])
    calls, hostcalls, count, buckets, _ = _seen(host.stats)
    assert calls == {
        ("init", "ok"): rounds,
        ("alloc", "ok"): CALLS,
        ("handle", "ok"): CALLS,
        ("hc", "ok"): HOST_LOOPS + rounds,
    }
    assert hostcalls == {
        ("time_now_ms", "ok"): rounds * 4 + 2 * CALLS + 5 * HOST_LOOPS,
        ("output", "ok"): CALLS,
        ("random_fill", "ok"): 5 * HOST_LOOPS + 3 * rounds,
    }
    assert count == buckets == rounds * 2 + 2 * CALLS + HOST_LOOPS


def test_exact_when_every_increment_is_interrupted(
    runtime: WasmtimeRuntime, module: CompiledModule, tmp_path: Path
) -> None:
    host = make_host(tmp_path)
    shared = host.services.stats
    shared.calls, shared.hostcalls = _SwitchingCounter(), _SwitchingCounter()
    n = 300
    a = runtime.instantiate(module, Limits(), host.services)
    b = runtime.instantiate(module, Limits(), host.services)

    def work(inst: PluginInstance) -> None:
        hc = inst.export_i32("hc")
        for _ in range(n):
            assert hc(2) == 2

    with a, b:
        _in_threads([lambda: work(a), lambda: work(b)])
    calls, hostcalls, count, buckets, _ = _seen(shared)
    assert calls == {("hc", "ok"): 2 * n}
    assert hostcalls == {("time_now_ms", "ok"): 4 * n, ("random_fill", "ok"): 4 * n}
    assert count == buckets == 2 * n


def test_writers_are_reused_and_totals_keep_every_count() -> None:
    stats = PluginStats()
    first, second, third = (stats.claim_writer() for _ in range(3))
    assert first is stats and len({id(first), id(second), id(third)}) == 3
    for n, writer in enumerate((first, second, third), start=1):
        writer.calls[("handle", "ok")] += n
        writer.hostcalls[("log", "ok")] += 10 * n
        writer.call_duration.observe(0.001 * n)
        writer.fuel_consumed += 100 * n
    stats.restarts, stats.log_dropped = 4, 5
    stats.release_writer(second)
    stats.release_writer(second)  # closing twice frees it once
    stats.release_writer(first)
    assert stats.claim_writer() is first  # the plugin's own fields first
    assert stats.claim_writer() is second  # then a freed shard, handed out again
    fourth = stats.claim_writer()  # four alive at once: a new shard
    assert all(fourth is not w for w in (first, second, third))
    total = stats.totals()
    assert total.calls == {("handle", "ok"): 6} and total.hostcalls == {("log", "ok"): 60}
    assert (total.call_duration.count, total.fuel_consumed) == (3, 600)
    assert total.call_duration.total == pytest.approx(0.006)
    assert (total.restarts, total.log_dropped) == (4, 5)
    assert stats.calls == {("handle", "ok"): 1}  # the plugin's own fields are left as they were
