"""A plugin's slow ``stop``/``unload``/``tick`` holds neither the daemon loop nor the watchdog
nor the other plugins (a real daemon process under a watchdog, and one in-process).

The reproduction of issue 11: a plugin whose ``stop`` and ``unload`` each ran up to its
``call_timeout_ms`` held the loop 16 s during a swap (reload and install waited 15.5 s, no
``WATCHDOG=1`` for 16.4 s); plugin A's 100 ms tick got 4 ticks in 6 s once B's 2 s tick ran.
Bounds here are generous ceilings against a hang, far from what the old behaviour gave.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, SLOW_LIMITS, Daemon, Env, drop, in_process, manifest
from waiting import poll_until

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.core.audit_chain import parse_rfc3339

SPIN_UNTIL_STOPPED = "(loop $forever (br $forever)) i32.const 0"  # only a deadline ends it
WATCHDOG_USEC = 400_000  # systemd would kill a daemon silent for 0.4 s
LIFECYCLE_S = 2.0  # the operator's bound on each stop/unload (lifecycle_timeout_s)


def slow_stopper(name: str, version: str) -> bytes:
    bodies = {"stop": SPIN_UNTIL_STOPPED, "unload": SPIN_UNTIL_STOPPED}
    text = f"""(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{version}")
  {lifecycle_exports(bodies)}
  {ALLOC}
  (func (export "handle") (param i32 i32) (result i32)
    (drop (call $output (i32.const 16) (i32.const {len(version)})))
    i32.const 0))"""
    return make_signed_plugin(text, manifest(name, version, limits=SLOW_LIMITS), KEY)


class NotifyRecorder:
    """Every notify datagram of a daemon process, with the time it arrived."""

    def __init__(self, daemon: Daemon) -> None:
        self.sock = daemon.notify
        self.got: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.got.append((time.monotonic(), msg))

    def longest_watchdog_gap(self) -> float:
        self.stop.set()
        self.thread.join(5)
        beats = [t for t, msg in self.got if "WATCHDOG=1" in msg.splitlines()]
        assert len(beats) >= 2, self.got
        return max(b - a for a, b in itertools.pairwise(beats))


def audit_when(env: Env, event: str, **fields: Any) -> list[float]:
    """The times (Unix seconds) of the matching audit entries so far."""
    return [
        parse_rfc3339(e["ts"])
        for e in env.audit_events()
        if e["event"] == event and all(e.get(k) == v for k, v in fields.items())
    ]


def wait_audited(env: Env, count: int, event: str, **fields: Any) -> list[float]:
    return poll_until(
        lambda: (found := audit_when(env, event, **fields)) and len(found) >= count and found,
        60,
        f"{count}x {event} {fields}",
    )


def timed(action: Any) -> tuple[float, float]:
    """(seconds it took, Unix time it ended)."""
    t0 = time.monotonic()
    action()
    return time.monotonic() - t0, time.time()


def test_slow_stop_and_unload_hold_neither_the_loop_nor_the_watchdog(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write_config(f"lifecycle_timeout_s = {LIFECYCLE_S}")
    drop(env.plugins, "p.wasm", slow_stopper("p", "1.0.0"))
    d = Daemon(env, {"WATCHDOG_USEC": str(WATCHDOG_USEC)})
    try:
        d.ready()
        recorder = NotifyRecorder(d)
        # a swap: v1 is retired (stop and unload spin until their 2 s bound each)
        drop(env.plugins, "p-2.wasm", slow_stopper("p", "2.0.0"))
        poll_until(lambda: d.status()["p"]["version"] == "2.0.0", 60, "v2 serving")
        with d.client() as c:
            reload_s, reloaded_at = timed(c.reload)
            assert d.invoke("p") == b"2.0.0"
        stops = wait_audited(env, 1, "plugin.failed", version="1.0.0", reason="deadline")
        unloads = wait_audited(env, 2, "plugin.failed", version="1.0.0", reason="deadline")
        assert reload_s < LIFECYCLE_S  # not behind the retirement (4 s in all)
        assert reloaded_at < max(unloads)  # it answered while v1 was still being unloaded
        assert stops and [e["details"]["export"] for e in env.audit_events()
                          if e["event"] == "plugin.failed"] == ["stop", "unload"]  # fmt: skip

        # a removal: v2 is retired the same way, the loop answers meanwhile
        with d.client() as c:
            remove_s, _ = timed(lambda: c.remove("p"))
            reload_s, reloaded_at = timed(c.reload)
        unloads = wait_audited(env, 4, "plugin.failed", reason="deadline")
        assert remove_s < LIFECYCLE_S and reload_s < LIFECYCLE_S
        assert reloaded_at < max(unloads)
        assert "p" not in env.state()["active"]
        assert recorder.longest_watchdog_gap() < 1.5  # fed all along (0.2 s interval)
    finally:
        d.stop()


def test_a_slow_tick_does_not_slow_another_plugins_ticks(tmp_path: Path) -> None:
    env = Env(tmp_path)
    fast = f"""(module (memory (export "memory") 1) {lifecycle_exports()}
      (func (export "tick") (result i32) i32.const 0))"""
    # B's tick takes 1.5 s of every 2 s (it watches the clock, so CPU speed does not matter)
    slow = f"""(module
      (import "forgeone" "time_now_ms" (func $now (result i64)))
      (memory (export "memory") 1) {lifecycle_exports()}
      (func (export "tick") (result i32) (local $end i64)
        (local.set $end (i64.add (call $now) (i64.const 1500)))
        (block $done (loop $wait
          (br_if $done (i64.ge_s (call $now) (local.get $end)))
          (br $wait)))
        i32.const 0))"""
    caps = {"clock": True}
    drop(env.plugins, "a.wasm", make_signed_plugin(fast, manifest("a", "1.0.0",
         tick_interval_ms=100), KEY))  # fmt: skip
    drop(env.plugins, "b.wasm", make_signed_plugin(slow, manifest("b", "1.0.0",
         capabilities=caps, tick_interval_ms=2000, limits={"fuel_per_call": 10**12,
         "call_timeout_ms": 5000}), KEY))  # fmt: skip
    with in_process(env) as d:
        ticks = d.parts.ticks
        assert ticks.wait_runs(1, 30, "b")
        a0, b0 = ticks.runs_of("a"), ticks.runs_of("b")
        assert ticks.wait_runs(b0 + 3, 30, "b")  # about 6 s of B ticking 1.5 s in every 2
        a_ticks = ticks.runs_of("a") - a0
        # alone, A ticks ~60 times in 6 s; on one shared thread it got ~15 (0.5 s of every 2)
        assert a_ticks >= 30, a_ticks
        assert d.view("a").stats.calls[("tick", "ok")] >= a_ticks
        assert d.view("b").state == "running" and d.view("a").state == "running"


def test_only_plugins_with_short_call_timeouts_run_on_the_control_loop(tmp_path: Path) -> None:
    # Found by replay: after 64 fast calls a plugin ran inline on the control server's loop
    # thread, and one 8 s call of it held an admin's `status` for 7.5 s. Now a plugin whose
    # call timeout exceeds the inline bound (1 s) is always served in the invoke lane, while
    # one at the default timeout still earns the inline path under the same conditions.
    env = Env(tmp_path)
    echo = f"""(module
      (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
      (memory (export "memory") 1) {lifecycle_exports()} {ALLOC}
      (func (export "handle") (param $p i32) (param $l i32) (result i32)
        (drop (call $output (local.get $p) (local.get $l))) i32.const 0))"""
    drop(env.plugins, "short.wasm", make_signed_plugin(echo, manifest("short", "1.0.0"), KEY))
    drop(env.plugins, "long.wasm", make_signed_plugin(echo, manifest("long", "1.0.0",
         limits={"call_timeout_ms": 20_000}), KEY))  # fmt: skip
    with in_process(env) as d, ControlClient(str(env.socket), timeout=60) as client:
        control = d.daemon.control
        for _ in range(5000):  # both get the same chances; ends once "short" runs inline
            assert client.invoke("long", b"x") == b"x"
            assert client.invoke("short", b"x") == b"x"
            if control.statistics().inline_calls >= 8:
                break
        inline = control.statistics().inline_calls
        assert inline >= 8, "the default-timeout plugin never ran inline"
        for _ in range(200):
            assert client.invoke("long", b"x") == b"x"
        assert control.statistics().inline_calls == inline
