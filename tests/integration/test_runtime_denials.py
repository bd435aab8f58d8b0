"""A hostile plugin looping on a denied host function: counted in full, audited within budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_wat import assert_runtime_healthy, make_host, plugin_wat

from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.events import EventName
from forgeoned.core.manifest import Capabilities, Limits

# flood(n): calls the denied random_fill n times; returns how many answered -2 (denied).
FLOOD = """
  (func (export "flood") (param $n i32) (result i32) (local $denied i32)
    (block (loop
      (br_if 1 (i32.eqz (local.get $n)))
      (if (i32.eq (call $random_fill (i32.const 0) (i32.const 8)) (i32.const -2))
        (then (local.set $denied (i32.add (local.get $denied) (i32.const 1)))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br 0)))
    local.get $denied)
"""


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime() as rt:
        yield rt


def test_denial_flood_is_bounded_in_the_audit_log(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    host = make_host(tmp_path, caps=Capabilities(clock=True))
    module = runtime.compile(plugin_wat(imports=("random_fill",), extra=FLOOD))
    inst = runtime.instantiate(module, Limits(), host.services)
    flood = inst.export_i32("flood")
    assert flood(20_000) == 20_000  # the plugin is told "denied" every single time
    assert host.stats.hostcalls[("random_fill", "denied")] == 20_000
    assert len(host.audit.events) == 10
    assert {e.event for e in host.audit.events} == {EventName.HOSTCALL_DENIED}

    host.clock.advance(60.0)  # the window has ended: its summary goes out at the next tick
    inst.call(LifecycleExport.PAUSE)
    summary = host.audit.events[-1]
    assert summary.details == {"function": "random_fill", "suppressed": 19_990, "window_s": 60.0}

    assert flood(5) == 5  # a new window: audited one by one again
    assert len(host.audit.events) == 16
    assert flood(100) == 100
    inst.close()  # what the last window suppressed is reported when the instance goes away
    assert host.audit.events[-1].details["suppressed"] == 95
    assert len(host.audit.events) == 22
    assert host.stats.hostcalls[("random_fill", "denied")] == 20_105
    assert_runtime_healthy(runtime, tmp_path)


def test_instances_of_one_plugin_share_the_budget(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    host = make_host(tmp_path, caps=Capabilities())
    module = runtime.compile(plugin_wat(imports=("random_fill",), extra=FLOOD))
    with (
        runtime.instantiate(module, Limits(), host.services) as a,
        runtime.instantiate(module, Limits(), host.services) as b,
    ):
        a.call_i32("flood", 8)
        b.call_i32("flood", 8)
        assert len(host.audit.events) == 10
    # Closing reports the 6 suppressed ones once (the second close finds nothing left).
    assert [e.details.get("suppressed") for e in host.audit.events[10:]] == [6]
