"""Backends for bench/invoke.py: an in-memory one, and one that runs a real wasm ``handle``
through forgeoned's runtime adapter (used until the daemon itself can be benchmarked)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import wasmtime

from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent
from forgeoned.core.manifest import Capabilities, Limits
from forgeoned.core.stats import PluginStats, PluginView
from forgeoned.errors import ConflictError

# An ABI v1 echo plugin: handle() outputs its input unchanged.
ECHO_WAT = """
(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "init") (result i32) i32.const 0)
  (func (export "start") (result i32) i32.const 0)
  (func (export "stop") (result i32) i32.const 0)
  (func (export "pause") (result i32) i32.const 0)
  (func (export "resume") (result i32) i32.const 0)
  (func (export "unload") (result i32) i32.const 0)
  (func (export "alloc") (param $n i32) (result i32) i32.const 1024)
  (func (export "handle") (param $p i32) (param $n i32) (result i32)
    (drop (call $output (local.get $p) (local.get $n)))
    i32.const 0))
"""


class NullSink:
    def record(self, event: AuditEvent) -> None:
        pass


def _unsupported() -> ConflictError:
    return ConflictError("the benchmark backend serves only list, show and invoke")


class _Unused:
    """The control-API methods the benchmark never calls."""

    def _view(self, name: str) -> PluginView:
        return PluginView(name, "1.0.0", "0" * 64, "running", 0, PluginStats())

    def list_plugins(self) -> list[PluginView]:
        return [self._view("bench")]

    def get_plugin(self, name: str) -> PluginView:
        return self._view(name)

    def install(self, data: bytes, filename: str, actor: str) -> PluginView | None:
        raise _unsupported()

    def remove(self, name: str, actor: str) -> None:
        raise _unsupported()

    def pause(self, name: str, actor: str) -> None:
        raise _unsupported()

    def resume(self, name: str, actor: str) -> None:
        raise _unsupported()

    def restart(self, name: str, actor: str) -> None:
        raise _unsupported()

    def reset(self, name: str, actor: str) -> None:
        raise _unsupported()

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        raise _unsupported()

    def reload(self, actor: str) -> None:
        raise _unsupported()

    def audit_entries(self, since: float | None) -> list[dict[str, Any]]:
        return []

    def audit_verify(self) -> dict[str, Any]:
        return {"ok": True}


class MemoryBackend(_Unused):
    def invoke(self, name: str, data: bytes) -> bytes:
        return data.upper()

    def invoke_now(self, name: str, data: bytes, longest_s: float) -> bytes | None:
        return data.upper()


class WasmBackend(_Unused):
    """Runs ``handle`` through forgeoned's own wasmtime runtime adapter (fuel, deadline, raw
    C-API call path); one instance per worker thread (a thread-local)."""

    def __init__(self, wasm: bytes, source: str) -> None:
        self.runtime = WasmtimeRuntime()
        self.module = self.runtime.compile(wasm)
        self.source = source
        self.local = threading.local()
        self.instances: list[PluginInstance] = []
        self.lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None) -> WasmBackend:
        if path is not None:
            return cls(path.read_bytes(), path.name)
        return cls(bytes(wasmtime.wat2wasm(ECHO_WAT)), "inline WAT echo")

    def _instance(self) -> PluginInstance:
        services = HostServices(
            plugin="bench",
            version="1.0.0",
            capabilities=Capabilities(log=True, clock=True, random=True),
            env={},
            secrets_dir=None,
            kv=None,
            audit=NullSink(),
            log=lambda _plugin, _level, _message: None,
            clock=SystemClock(),
            stats=PluginStats(),
        )
        inst = self.runtime.instantiate(self.module, Limits(), services)
        inst.call(LifecycleExport.INIT)
        inst.call(LifecycleExport.START)
        with self.lock:
            self.instances.append(inst)
        return inst

    def invoke(self, name: str, data: bytes) -> bytes:
        inst = getattr(self.local, "inst", None)
        if inst is None:
            inst = self.local.inst = self._instance()
        out: bytes = inst.handle(data)
        return out

    def invoke_now(self, name: str, data: bytes, longest_s: float) -> bytes | None:
        return self.invoke(name, data)  # one instance per thread: always free

    def close(self) -> None:
        for inst in self.instances:
            inst.close()
        self.runtime.close()
