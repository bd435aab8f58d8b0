"""The Rust sample plugin, built with the Debian toolchain, driven through its whole lifecycle."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest_sample import SAMPLE_DIR, build_sample
from runtime_wat import Host
from runtime_wat import make_host as make_plain_host

from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.abi import HOOK_FUNCTIONS, HOST_FUNCTIONS, LifecycleExport
from forgeoned.core.manifest import Capabilities, Limits, Manifest
from forgeoned.core.manifest_parse import parse_manifest_obj
from forgeoned.core.plugin_metrics import PluginMetricSet
from forgeoned.errors import ApplicationError, PluginStatusError, PluginTrap, TrapKind

pytestmark = pytest.mark.rust

CAPS = Capabilities(
    log=True,
    clock=True,
    random=True,
    env=frozenset({"TZ"}),
    secrets=frozenset({"api-token"}),
    kv_quota_bytes=65536,
    metrics=True,  # declaring [metrics] is the request
)
# What the sample imports: the nine host functions of ABI v1 and the provider hooks it
# exercises. Built without the `outbound` feature, it neither requests nor times (histogram):
# no http_request, no metric_observe. Spelled out, so that a host function added to the daemon
# does not change what this sample is expected to import.
SAMPLE_USES = frozenset(
    {"log", "env_get", "secret_get", "time_now_ms", "random_fill", "kv_get", "kv_set"}
    | {"kv_delete", "output", "config_get", "metric_add", "metric_set"}
)


def sample_manifest() -> Manifest:
    return parse_manifest_obj(tomllib.loads((SAMPLE_DIR / "manifest.toml").read_text()))


def make_host(tmp: Path, caps: Capabilities = CAPS, config: dict[str, str] | None = None) -> Host:
    """A host for the sample: its declared functions, config values and metrics."""
    host = make_plain_host(tmp, caps=caps)
    manifest = sample_manifest()
    host.services = dataclasses.replace(
        host.services,
        config={"greeting": "sample"} if config is None else config,
        metrics=PluginMetricSet(manifest.metrics) if caps.metrics else None,
        functions=frozenset(manifest.functions),
    )
    return host


@pytest.fixture
def sample_wasm() -> bytes:
    return build_sample()  # built once per session, skips without the Rust toolchain


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime() as rt:
        yield rt


def test_manifest_matches_the_brief() -> None:
    manifest = sample_manifest()
    assert (manifest.name, manifest.version) == ("sample", "1.0.0")
    assert manifest.capabilities == CAPS
    assert manifest.functions == ("stats",)
    assert [m.name for m in manifest.metrics] == ["commands", "invocations", "fetch_seconds"]


def test_full_lifecycle(runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes) -> None:
    module = runtime.compile(sample_wasm)
    assert module.has_handle and module.has_tick
    assert module.shape.imports <= frozenset(HOST_FUNCTIONS)  # only what the daemon provides
    assert module.shape.imports == SAMPLE_USES  # ABI v1 and the provider hooks
    assert HOOK_FUNCTIONS - {"metric_observe"} <= module.shape.imports
    host = make_host(tmp_path, caps=CAPS)
    with runtime.instantiate(module, Limits(), host.services) as inst:
        inst.call(LifecycleExport.INIT)
        inst.call(LifecycleExport.START)
        assert inst.handle(b"hello") == b"sample 1.0.0 #1 | hello"
        inst.tick()
        inst.call(LifecycleExport.PAUSE)
        inst.call(LifecycleExport.RESUME)
        assert inst.handle(b"again") == b"sample 1.0.0 #2 | again"
        inst.call(LifecycleExport.STOP)
        inst.call(LifecycleExport.UNLOAD)
    # The counter was written by pause and stop, never by handle itself.
    assert host.services.kv is not None
    assert host.services.kv.get(b"invocations") == b"2"
    assert host.stats.hostcalls[("kv_set", "ok")] == 2
    assert [m for _, _, m in host.log.lines] == [
        "sample 1.0.0 init (TZ=Europe/Paris)",
        "sample start",
        "sample pause",
        "sample resume",
        "sample stop",
        "sample unload",
    ]
    assert host.stats.calls[("handle", "ok")] == 2
    assert host.audit.events == []


def test_every_host_function_from_rust(
    runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes
) -> None:
    host = make_host(tmp_path, caps=CAPS)
    host.clock.advance(2.0)
    with runtime.instantiate(runtime.compile(sample_wasm), Limits(), host.services) as inst:
        inst.call(LifecycleExport.INIT)
        inst.call(LifecycleExport.START)  # reads its config
        assert inst.handle(b"!env") == b"TZ=Europe/Paris"
        assert inst.handle(b"!secret") == b"secret-len=6"
        assert inst.handle(b"!time") == f"time={int(host.clock.wall() * 1000)}".encode()
        first, second = inst.handle(b"!random"), inst.handle(b"!random")
        assert re.fullmatch(rb"random=[0-9a-f]{16}", first) and first != second
        kv = host.services.kv
        assert kv is not None
        assert inst.handle(b"x") == b"sample 1.0.0 #1 | x"
        assert inst.handle(b"x") == b"sample 1.0.0 #2 | x"
        assert inst.handle(b"!kv-set") == b"sample 1.0.0 #3 | !kv-set"
        assert kv.get(b"invocations") == b"3"  # durable before the reply
        assert inst.handle(b"!kv-set") == b"sample 1.0.0 #4 | !kv-set"
        assert kv.get(b"invocations") == b"4"
        assert inst.handle(b"!kv-reset") == b"kv-reset"
        assert kv.get(b"invocations") is None
        assert inst.handle(b"y") == b"sample 1.0.0 #1 | y"
        assert inst.handle(b"!grow 1").startswith(b"grow=")
        assert inst.handle(b"!grow 70000") == b"grow=-1"  # past the memory cap
    outcomes = {f for (f, o) in host.stats.hostcalls if o == "ok"}
    assert outcomes == SAMPLE_USES  # every import it has, called with success


def test_config_named_function_and_metrics(
    runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes
) -> None:
    host = make_host(tmp_path, config={"greeting": "hola"})
    with runtime.instantiate(runtime.compile(sample_wasm), Limits(), host.services) as inst:
        inst.call(LifecycleExport.INIT)
        assert inst.handle(b"x") == b"sample 1.0.0 #1 | x"  # before start: the default
        inst.call(LifecycleExport.START)
        assert inst.handle(b"x") == b"hola 1.0.0 #2 | x"
        for command in (b"!env", b"!env", b"!time", b"!kv-set", b"!unknown"):
            inst.handle(command)
        inst.tick()
        assert inst.handle(b"", export="stats") == b"invocations=4 ticks=1 greeting=hola"
    assert host.services.metrics is not None
    series = {s.decl.name: s.values for s in host.services.metrics.snapshot()}
    assert series["commands"] == ((("env",), 2.0), (("kv-set",), 1.0), (("time",), 1.0))
    assert series["invocations"] == (((), 3.0),)  # saved by !kv-set (before !unknown)
    assert host.stats.hostcalls.get(("metric_add", "invalid")) is None


def test_without_capabilities_the_plugin_is_told_no(
    runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes
) -> None:
    host = make_host(tmp_path, caps=Capabilities())
    with runtime.instantiate(runtime.compile(sample_wasm), Limits(), host.services) as inst:
        inst.call(LifecycleExport.INIT)
        assert inst.handle(b"!env") == b"TZ!denied"
        assert inst.handle(b"!secret") == b"secret!denied"
        assert inst.handle(b"!random") == b"random!denied"
        assert inst.handle(b"z") == b"sample 1.0.0 #1 | z"  # counted in memory all the same
        assert inst.handle(b"!kv-set") == b"sample 1.0.0 #?denied | !kv-set"
        inst.call(LifecycleExport.STOP)  # cannot save the counter: logs it, still succeeds
    denied = {e.details["function"] for e in host.audit.events}
    assert denied == {
        "log",
        "env_get",
        "secret_get",
        "random_fill",
        "kv_get",
        "kv_set",
        "metric_add",
    }


def test_counter_survives_a_new_instance(
    runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes
) -> None:
    module = runtime.compile(sample_wasm)
    for expected in (b"#1", b"#2"):
        host = make_host(tmp_path, caps=CAPS)  # same kv directory, new store and instance
        with runtime.instantiate(module, Limits(), host.services) as inst:
            inst.call(LifecycleExport.INIT)
            inst.call(LifecycleExport.START)  # loads the counter
            assert expected in inst.handle(b"count")
            inst.call(LifecycleExport.STOP)  # saves it
        assert host.services.kv is not None
        host.services.kv.close()


def test_plain_calls_do_not_touch_the_disk(
    runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes
) -> None:
    host = make_host(tmp_path, caps=CAPS)
    kv = host.services.kv
    assert kv is not None
    with runtime.instantiate(runtime.compile(sample_wasm), Limits(), host.services) as inst:
        inst.call(LifecycleExport.INIT)
        inst.call(LifecycleExport.START)
        for n in range(1, 51):
            assert inst.handle(b"q") == f"sample 1.0.0 #{n} | q".encode()
        assert host.stats.hostcalls[("kv_set", "ok")] == 0
        assert kv.get(b"invocations") is None
        # `!kv-set` is the explicit per-call durable path.
        assert inst.handle(b"!kv-set") == b"sample 1.0.0 #51 | !kv-set"
        assert host.stats.hostcalls[("kv_set", "ok")] == 1
        assert kv.get(b"invocations") == b"51"
        # 1,000 unsaved calls are saved on their own: a crash loses at most 999 counts.
        for _ in range(999):
            inst.handle(b"q")
        assert host.stats.hostcalls[("kv_set", "ok")] == 1
        assert inst.handle(b"q") == b"sample 1.0.0 #1051 | q"
        assert host.stats.hostcalls[("kv_set", "ok")] == 2
        assert kv.get(b"invocations") == b"1051"


def test_instances_add_up_to_one_total(
    runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes
) -> None:
    host = make_host(tmp_path, caps=CAPS)  # both instances share the plugin's kv
    module = runtime.compile(sample_wasm)
    with (
        runtime.instantiate(module, Limits(), host.services) as a,
        runtime.instantiate(module, Limits(), host.services) as b,
    ):
        for inst in (a, b):
            inst.call(LifecycleExport.INIT)
            inst.call(LifecycleExport.START)
        assert [a.handle(b"a") for _ in range(3)][-1] == b"sample 1.0.0 #3 | a"
        assert [b.handle(b"b") for _ in range(2)][-1] == b"sample 1.0.0 #2 | b"
        a.call(LifecycleExport.PAUSE)
        b.call(LifecycleExport.STOP)
        a.call(LifecycleExport.RESUME)
        assert a.handle(b"a") == b"sample 1.0.0 #6 | a"
        a.call(LifecycleExport.STOP)
    assert host.services.kv is not None
    assert host.services.kv.get(b"invocations") == b"6"


def test_failures_on_command(runtime: WasmtimeRuntime, tmp_path: Path, sample_wasm: bytes) -> None:
    host = make_host(tmp_path, caps=CAPS)
    limits = Limits(call_timeout_ms=50, fuel_per_call=10**12)
    with runtime.instantiate(runtime.compile(sample_wasm), limits, host.services) as inst:
        with pytest.raises(ApplicationError, match="'handle' returned status 1"):
            inst.handle(b"!fail")
        with pytest.raises(PluginTrap) as panic:
            inst.handle(b"!panic")
        assert panic.value.kind is TrapKind.UNREACHABLE
        with pytest.raises(PluginTrap) as spin:
            inst.handle(b"!spin")
        assert spin.value.kind is TrapKind.DEADLINE


def test_versions_are_distinguishable(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    v2 = build_sample("2.0.0")
    assert build_sample("2.0.0") is v2  # built once per session
    host = make_host(tmp_path, caps=CAPS)
    with runtime.instantiate(runtime.compile(v2), Limits(), host.services) as inst:
        assert inst.handle(b"hi") == b"sample 2.0.0 #1 | hi"


def test_fail_init_variant(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    wasm = build_sample("1.0.1", fail_init=True)
    host = make_host(tmp_path, caps=CAPS)
    with runtime.instantiate(runtime.compile(wasm), Limits(), host.services) as inst:
        with pytest.raises(PluginStatusError, match="'init' returned status 1"):
            inst.call(LifecycleExport.INIT)
