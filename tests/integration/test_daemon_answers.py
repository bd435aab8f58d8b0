"""A plugin's non-zero ``handle`` status is its answer, not a fault (real daemon, real wasm).

The plugin below counts its calls in a global (in-memory state), outputs ``n=<count>;`` then
its input, and returns 3 when the input starts with ``b`` ("bad input"), traps when it starts
with ``t``, and returns 0 otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, Env, drop, in_process, manifest

from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.core.lifecycle import State
from forgeoned.errors import ApplicationError, PluginTrap

ANSWERING = f"""(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "n=")
  {lifecycle_exports()}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 18) (i32.add (i32.const 48) (global.get $calls)))
    (i32.store8 (i32.const 19) (i32.const 59))
    (drop (call $output (i32.const 16) (i32.const 4)))
    (drop (call $output (local.get $p) (local.get $l)))
    (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 116)) (then unreachable))
    (if (result i32) (i32.eq (i32.load8_u (local.get $p)) (i32.const 98))
      (then (i32.const 3)) (else (i32.const 0)))))"""


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    m = manifest("answer", "1.0.0", capabilities={"log": True})
    drop(e.plugins, "answer.wasm", make_signed_plugin(ANSWERING, m, KEY))
    return e


def test_a_non_zero_status_returns_the_output_and_keeps_the_plugin(env: Env) -> None:
    with in_process(env) as d:
        assert d.invoke("answer", b"ok") == b"n=1;ok"
        # more application errors than the restart budget allows faults (5 in 10 s)
        for n in range(2, 9):
            with pytest.raises(ApplicationError) as caught:
                d.invoke("answer", b"bad input")
            answer = caught.value
            assert (answer.code, answer.export, answer.status) == ("application_error", "handle", 3)
            assert answer.output == f"n={n};bad input".encode()
        assert d.invoke("answer", b"ok") == b"n=9;ok"  # same instance, its memory kept
        view = d.view("answer")
        assert view.state == "running" and view.stats.restarts == 0
        assert view.stats.calls[("handle", "error")] == 7
        assert view.stats.calls[("handle", "ok")] == 2
        assert view.last_error is None
        assert d.events.labels("answer") == ["plugin.installed"]  # no failure, no restart
        assert env.state()["quarantined"] == []


def test_a_trap_is_still_a_fault(env: Env) -> None:
    with in_process(env) as d:
        assert d.invoke("answer", b"ok") == b"n=1;ok"
        with pytest.raises(PluginTrap):
            d.invoke("answer", b"trap")
        [failed] = d.events.wait("plugin.failed", "answer")
        assert failed.reason == "unreachable"
        d.events.wait("plugin.restarted", "answer")
        assert d.parts.plugins.host("answer").wait_for(State.RUNNING, 30)
        assert d.invoke("answer", b"ok") == b"n=1;ok"  # a fresh instance
