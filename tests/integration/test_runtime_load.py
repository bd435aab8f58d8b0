"""Loading: malformed, oversized and ABI-violating modules are clear errors; nothing leaks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime
from runtime_wat import ECHO_WAT, assert_runtime_healthy, make_host, plugin_wat

from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.manifest import Limits
from forgeoned.errors import ArtifactTooLargeError, LoadError, MalformedModuleError

CAP = 64 * 1024
INIT_WITH_PARAM = '(func (export "init") (param i32) (result i32) i32.const 0)'


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmtimeRuntime]:
    with WasmtimeRuntime(max_module_bytes=CAP) as rt:
        yield rt


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad magic number"),
        (b"(module)", "bad magic number"),  # WAT text is not an artifact
        (b"\0asm\x01\0\0\0\x01\xff\xff", "invalid WebAssembly module"),
        (b"\0asm\x02\0\0\0", "invalid WebAssembly module"),
        (ECHO_WAT[: len(ECHO_WAT) // 2], "invalid WebAssembly module"),
        (ECHO_WAT[:-1], "invalid WebAssembly module"),
    ],
    ids=["empty", "wat-text", "bad-section", "bad-version", "half", "one-byte-short"],
)
def test_malformed_bytes(
    runtime: WasmtimeRuntime, tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(MalformedModuleError, match=message) as info:
        runtime.compile(data)
    assert "\n" not in str(info.value)
    assert_runtime_healthy(runtime, tmp_path)


def test_size_cap_is_checked_before_parsing(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    # Not even wasm: only a size check that runs first can call this "too large".
    with pytest.raises(ArtifactTooLargeError, match=f"over the {CAP}-byte cap"):
        runtime.compile(b"\xff" * (CAP + 1))
    big = plugin_wat(extra=f'(data (i32.const 0) "{"x" * CAP}")')
    with pytest.raises(ArtifactTooLargeError, match=f"module is {len(big)} bytes"):
        runtime.compile(big)
    assert_runtime_healthy(runtime, tmp_path)


@pytest.mark.parametrize(
    ("wasm", "message"),
    [
        (plugin_wat(omit=("stop",)), "ABI v1: missing export 'stop'"),
        (plugin_wat(memory="(memory 1)"), "ABI v1: missing export 'memory'"),
        (
            plugin_wat(omit=("init",), extra=INIT_WITH_PARAM),
            r"export 'init' has signature \(i32\) -> \(i32\), expected \(\) -> \(i32\)",
        ),
        (
            plugin_wat(head='(import "env" "abort" (func))'),
            "unknown import 'env.abort'",
        ),
        (
            plugin_wat(head='(import "forgeone" "log" (func (param i32)))'),
            r"import 'forgeone.log' has signature \(i32\) -> \(\)",
        ),
        (
            plugin_wat(extra='(func (export "alloc") (param i32) (result i32) i32.const 0)'),
            "export 'alloc' without 'handle'",
        ),
    ],
    ids=["missing-stop", "no-memory", "wrong-signature", "unknown-import", "bad-import-sig",
         "alloc-without-handle"],
)  # fmt: skip
def test_abi_violations(
    runtime: WasmtimeRuntime, tmp_path: Path, wasm: bytes, message: str
) -> None:
    with pytest.raises(LoadError, match=message) as info:
        runtime.compile(wasm)
    assert "\n" not in str(info.value)
    assert_runtime_healthy(runtime, tmp_path)


def test_shape_flags(runtime: WasmtimeRuntime) -> None:
    bare = runtime.compile(plugin_wat())
    assert (bare.has_handle, bare.has_tick) == (False, False)
    full = runtime.compile(
        plugin_wat(handle="i32.const 0", extra='(func (export "tick") (result i32) i32.const 0)')
    )
    assert (full.has_handle, full.has_tick) == (True, True)


def test_serialize_round_trip(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    data = runtime.compile(ECHO_WAT).serialize()
    module = runtime.deserialize(data)
    assert module.has_handle
    host = make_host(tmp_path)
    with runtime.instantiate(module, Limits(), host.services) as inst:
        inst.call(LifecycleExport.INIT)
        assert inst.handle(b"cached") == b"cached"


def test_deserialize_rejects_garbage_and_other_engines(runtime: WasmtimeRuntime) -> None:
    with pytest.raises(LoadError, match="cannot load precompiled module"):
        runtime.deserialize(b"not native code")
    other = wasmtime.Config()  # no fuel, no epochs: an incompatible configuration
    foreign = wasmtime.Module(wasmtime.Engine(other), ECHO_WAT).serialize()
    with pytest.raises(LoadError, match="cannot load precompiled module"):
        runtime.deserialize(bytes(foreign))


def test_handle_on_a_plugin_without_handle(runtime: WasmtimeRuntime, tmp_path: Path) -> None:
    from forgeoned.errors import NotFoundError

    host = make_host(tmp_path)
    with runtime.instantiate(runtime.compile(plugin_wat()), Limits(), host.services) as inst:
        with pytest.raises(NotFoundError, match="exports no 'handle'"):
            inst.handle(b"x")
        with pytest.raises(NotFoundError, match="exports no 'tick'"):
            inst.tick()


def test_close_is_idempotent() -> None:
    rt = WasmtimeRuntime()
    rt.close()
    rt.close()
