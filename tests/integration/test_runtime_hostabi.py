"""Host functions called from real wasm through the raw callback path: every function's
out-of-bounds (-3), denied (-2, audited, counted) and quota (-4) results, and the happy path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_wat import FULL_CAPS, make_host, plugin_wat

from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.abi import DENIED, HOST_FUNCTIONS, INVALID, QUOTA
from forgeoned.core.events import EventName
from forgeoned.core.manifest import Capabilities, Limits
from forgeoned.errors import ApplicationError

# Memory layout of the probe module: names at 0.., the kv key "k" at 64, a value at 65.
DATA = '(data (i32.const 0) "TZ") (data (i32.const 16) "api-token") (data (i32.const 64) "kv")'
PAGE_END = 65536  # one page of memory: 65535 is the last valid byte

OUT_OF_BOUNDS = {
    "log": "i32.const 1 i32.const 65535 i32.const 2",
    "env_get": "i32.const 0 i32.const 2 i32.const 65535 i32.const 16",
    "secret_get": "i32.const 16 i32.const 9 i32.const -1 i32.const 16",
    "random_fill": "i32.const 65500 i32.const 100",
    "kv_get": "i32.const 65535 i32.const 2 i32.const 100 i32.const 10",
    "kv_set": "i32.const 64 i32.const 1 i32.const 65530 i32.const 10",
    "kv_delete": "i32.const -2 i32.const 1",
    "output": "i32.const 0 i32.const 65537",
    "config_get": "i32.const -2 i32.const 4 i32.const 100 i32.const 16",
    "metric_add": "i32.const -2 i32.const 4 i32.const 0 i32.const 0 f64.const 1",
    "metric_set": "i32.const 16 i32.const 4 i32.const 65535 i32.const 8 f64.const 1",
    "metric_observe": "i32.const 16 i32.const 65 i32.const 0 i32.const 0 f64.const 1",
    "http_request": "i32.const 0 i32.const 2 i32.const 65530 i32.const 100",
}
DENIED_ARGS = {
    "log": "i32.const 1 i32.const 0 i32.const 2",
    "env_get": "i32.const 16 i32.const 9 i32.const 100 i32.const 16",  # asks for "api-token"
    "secret_get": "i32.const 16 i32.const 9 i32.const 100 i32.const 16",
    "time_now_ms": "",
    "random_fill": "i32.const 100 i32.const 8",
    "kv_get": "i32.const 64 i32.const 1 i32.const 100 i32.const 10",
    "kv_set": "i32.const 64 i32.const 1 i32.const 65 i32.const 1",
    "kv_delete": "i32.const 64 i32.const 1",
    # the policy grants no metrics
    "metric_add": "i32.const 16 i32.const 4 i32.const 0 i32.const 0 f64.const 1",
    "metric_set": "i32.const 16 i32.const 4 i32.const 0 i32.const 0 f64.const 1",
    "metric_observe": "i32.const 16 i32.const 4 i32.const 0 i32.const 0 f64.const 1",
    "http_request": "i32.const 0 i32.const 2 i32.const 100 i32.const 16",
}


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime() as rt:
        yield rt


def probe_module(function: str, args: str) -> bytes:
    result = " i32.wrap_i64" if HOST_FUNCTIONS[function].sig.results == ("i64",) else ""
    probe = f'(func (export "probe") (result i32) {args} call ${function}{result})'
    dump = '(func (export "peek") (param i32) (result i32) local.get 0 i32.load8_u)'
    return plugin_wat(
        imports=tuple(HOST_FUNCTIONS),
        handle=f"{args} call ${function}{result}",
        extra=DATA + probe + dump,
    )


def snapshot(inst: PluginInstance) -> bytes:
    assert inst.host is not None
    data = inst.host.memory.read(0, PAGE_END)
    assert data is not None
    return data


def test_every_function_has_an_out_of_bounds_case() -> None:
    assert set(OUT_OF_BOUNDS) | {"time_now_ms"} == set(HOST_FUNCTIONS)
    # output and config_get need no capability (config keys are the manifest's own)
    assert set(DENIED_ARGS) | {"output", "config_get"} == set(HOST_FUNCTIONS)


@pytest.mark.parametrize("function", list(OUT_OF_BOUNDS))
def test_out_of_bounds_is_minus_three(
    runtime: WasmtimeRuntime, tmp_path: Path, function: str
) -> None:
    host = make_host(tmp_path)
    assert host.services.kv is not None
    host.services.kv.set(b"k", b"v")
    module = runtime.compile(probe_module(function, OUT_OF_BOUNDS[function]))
    with runtime.instantiate(module, Limits(), host.services) as inst:
        before = snapshot(inst)
        if function == "output":
            with pytest.raises(ApplicationError, match="returned status -3"):
                inst.handle(b"")  # the probe's handle returns what output returned
        else:
            assert inst.call_i32("probe") == INVALID
            assert snapshot(inst) == before
    assert host.stats.hostcalls == {(function, "invalid"): 1}
    assert host.services.kv.get(b"k") == b"v"
    assert host.log.lines == [] and host.audit.events == []


@pytest.mark.parametrize("function", list(DENIED_ARGS))
def test_denied_is_minus_two_audited_and_counted(
    runtime: WasmtimeRuntime, tmp_path: Path, function: str
) -> None:
    caps = Capabilities(env=frozenset({"TZ"}))  # env allowed, but only TZ
    host = make_host(tmp_path, caps=caps)
    module = runtime.compile(probe_module(function, DENIED_ARGS[function]))
    with runtime.instantiate(module, Limits(), host.services) as inst:
        before = snapshot(inst)
        assert inst.call_i32("probe") == DENIED
        assert snapshot(inst) == before
    assert host.stats.hostcalls == {(function, "denied"): 1}
    [event] = host.audit.events
    assert event.event is EventName.HOSTCALL_DENIED
    assert (event.plugin, event.version) == ("t", "1.0.0")
    assert event.details["function"] == function
    assert host.log.lines == []


def test_kv_over_quota_is_minus_four(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    host = make_host(tmp_path)  # quota 64 bytes
    fill = "i32.const 64 i32.const 1 i32.const 100 i32.const 63"
    over = "i32.const 65 i32.const 1 i32.const 100 i32.const 1"
    extra = DATA + (
        f'(func (export "fill") (result i32) {fill} call $kv_set)'
        f'(func (export "over") (result i32) {over} call $kv_set)'
    )
    wasm = plugin_wat(imports=("kv_set",), extra=extra)
    with runtime.instantiate(runtime.compile(wasm), Limits(), host.services) as inst:
        assert inst.call_i32("fill") == 0
        assert inst.call_i32("over") == QUOTA
    assert host.stats.hostcalls == {("kv_set", "ok"): 1, ("kv_set", "quota"): 1}
    assert host.services.kv is not None
    assert host.services.kv.get(b"k") == b"\0" * 63
    assert host.services.kv.get(b"v") is None
    assert host.services.kv.used_bytes() == 64


def test_happy_path_values_reach_the_plugin(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    host = make_host(tmp_path, caps=FULL_CAPS)
    host.clock.advance(1.5)
    env = "i32.const 0 i32.const 2 i32.const 200 i32.const 32 call $env_get"
    secret = "i32.const 16 i32.const 9 i32.const 300 i32.const 32 call $secret_get"
    extra = DATA + (
        f'(func (export "env") (result i32) {env})'
        f'(func (export "secret") (result i32) {secret})'
        '(func (export "now") (result i32) call $time_now_ms i64.const 1000 i64.div_u '
        "i32.wrap_i64)"
        '(func (export "peek") (param i32) (result i32) local.get 0 i32.load8_u)'
    )
    wasm = plugin_wat(imports=tuple(HOST_FUNCTIONS), extra=extra)
    with runtime.instantiate(runtime.compile(wasm), Limits(), host.services) as inst:
        assert inst.call_i32("env") == len("Europe/Paris")
        assert bytes(inst.call_i32("peek", 200 + i) for i in range(12)) == b"Europe/Paris"
        assert inst.call_i32("secret") == len("s3cret")
        assert bytes(inst.call_i32("peek", 300 + i) for i in range(6)) == b"s3cret"
        assert inst.call_i32("now") == int(host.clock.wall())
    assert host.audit.events == []
