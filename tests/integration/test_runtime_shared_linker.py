"""Plugins share one Linker per Engine, yet each host call reaches its own plugin's services.

The host functions are defined once per runtime and find the calling plugin through the
thread's active link (see ``forgeoned/adapters/wasm/hostlink.py``). These tests prove the
consequence that matters: two plugins never see each other's capabilities, kv, memory or
counters — one after the other, interleaved on one thread, and concurrently on two threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_wat import make_host, plugin_wat

from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.events import EventName
from forgeoned.core.manifest import Capabilities, Limits

# handle(ptr, len): kv_set("k" -> input) then kv_get("k") into 2048 and output what came
# back, plus env_get("TZ") into 3072 and output that: a plugin's reply shows exactly which
# kv and env the host gave it (a failed host call shows as its status byte 'E').
KEY_AT = '(data (i32.const 16) "k") (data (i32.const 32) "TZ")'
PROBE = """
  (local $n i32)
  (if (i32.ne (call $kv_set (i32.const 16) (i32.const 1) (local.get $ptr) (local.get $len))
              (i32.const 0))
    (then (drop (call $output (i32.const 64) (i32.const 1)))))
  (local.set $n (call $kv_get (i32.const 16) (i32.const 1) (i32.const 2048) (i32.const 512)))
  (if (i32.lt_s (local.get $n) (i32.const 0))
    (then (drop (call $output (i32.const 64) (i32.const 1))))
    (else (drop (call $output (i32.const 2048) (local.get $n)))))
  (drop (call $output (i32.const 65) (i32.const 1)))
  (local.set $n (call $env_get (i32.const 32) (i32.const 2) (i32.const 3072) (i32.const 512)))
  (if (i32.lt_s (local.get $n) (i32.const 0))
    (then (drop (call $output (i32.const 64) (i32.const 1))))
    (else (drop (call $output (i32.const 3072) (local.get $n)))))
  i32.const 0
"""
PROBE_WAT = plugin_wat(
    imports=("kv_set", "kv_get", "env_get", "output"),
    handle=PROBE,
    extra=KEY_AT + ' (data (i32.const 64) "E|")',
)
# same_clock(n): calls time_now_ms n times; returns 0 when every value equals the first, else 1.
CLOCK_LOOP = """
  (func (export "same_clock") (param $n i32) (result i32)
    (local $first i64)
    (local.set $first (call $time_now_ms))
    (block (loop
      (br_if 1 (i32.eqz (local.get $n)))
      (if (i64.ne (call $time_now_ms) (local.get $first)) (then (return (i32.const 1))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br 0)))
    i32.const 0)
  (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "poke") (param i32 i32) (result i32)
    (i32.store8 (local.get 0) (local.get 1)) i32.const 0)
"""
CLOCK_WAT = plugin_wat(imports=("time_now_ms",), extra=CLOCK_LOOP)
KV_ENV = Capabilities(env=frozenset({"TZ"}), kv_quota_bytes=1024)


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime() as rt:
        yield rt


def test_two_plugins_keep_their_own_kv_env_and_capabilities(
    runtime: WasmtimeRuntime, tmp_path: Path
) -> None:
    module = runtime.compile(PROBE_WAT)  # the same module, hence the same pre-linked imports
    a = make_host(tmp_path / "a", caps=KV_ENV, env={"TZ": "Europe/Paris"}, name="a")
    b = make_host(tmp_path / "b", caps=KV_ENV, env={"TZ": "Asia/Tokyo"}, name="b")
    none = make_host(tmp_path / "n", caps=Capabilities(), name="none")
    with (
        runtime.instantiate(module, Limits(), a.services) as ia,
        runtime.instantiate(module, Limits(), b.services) as ib,
        runtime.instantiate(module, Limits(), none.services) as inone,
    ):
        for _ in range(3):  # interleaved on one thread: each call sees only its own
            assert ia.handle(b"from-a") == b"from-a|Europe/Paris"
            assert ib.handle(b"from-b") == b"from-b|Asia/Tokyo"
            assert inone.handle(b"from-n") == b"EE|E"
    assert a.services.kv is not None and b.services.kv is not None
    assert a.services.kv.get(b"k") == b"from-a"
    assert b.services.kv.get(b"k") == b"from-b"
    # The capability-less plugin was denied by ITS capabilities, audited under ITS name only.
    assert a.audit.events == [] and b.audit.events == []
    assert {e.plugin for e in none.audit.events} == {"none"}
    assert {e.event for e in none.audit.events} == {EventName.HOSTCALL_DENIED}
    assert none.stats.hostcalls[("kv_set", "denied")] == 3
    assert a.stats.hostcalls[("kv_set", "ok")] == 3 == b.stats.hostcalls[("kv_set", "ok")]
    assert ("kv_set", "denied") not in a.stats.hostcalls


def test_memories_are_separate(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    module = runtime.compile(CLOCK_WAT)
    a, b = make_host(tmp_path / "a", name="a"), make_host(tmp_path / "b", name="b")
    with (
        runtime.instantiate(module, Limits(), a.services) as ia,
        runtime.instantiate(module, Limits(), b.services) as ib,
    ):
        ia.call_i32("poke", 100, 7)
        ib.call_i32("poke", 100, 9)
        assert (ia.call_i32("peek", 100), ib.call_i32("peek", 100)) == (7, 9)


def test_concurrent_plugins_each_reach_their_own_host(
    runtime: WasmtimeRuntime, tmp_path: Path
) -> None:
    """Two threads run two plugins at once (the GIL is released while wasm runs, so their
    host calls interleave): each plugin's clock and counters are its own on every call."""
    module = runtime.compile(CLOCK_WAT)
    hosts = [make_host(tmp_path / name, name=name) for name in ("a", "b")]
    hosts[1].clock.advance(1000.0)  # b's clock is 1,000 s ahead of a's
    rounds, per_round = 40, 500
    limits = Limits(fuel_per_call=10**12, call_timeout_ms=60_000)
    instances = [runtime.instantiate(module, limits, h.services) for h in hosts]
    barrier = threading.Barrier(2, timeout=30)
    failures: list[str] = []

    def run(index: int) -> None:
        same_clock = instances[index].export_i32("same_clock")
        barrier.wait()
        for _ in range(rounds):
            if same_clock(per_round) != 0:
                failures.append(f"plugin {index} saw another plugin's clock")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    for inst in instances:
        inst.close()
    assert failures == []
    expected = rounds * (per_round + 1)
    assert [h.stats.hostcalls[("time_now_ms", "ok")] for h in hosts] == [expected, expected]
