"""The wasmtime runtime adapter: one Engine, compilation with ABI checks, sandboxed instances.

Sandbox settings, all fixed here so every plugin gets the same ones:

- fuel metering (``fuel_per_call`` refilled before every call) and epoch interruption for
  wall-clock deadlines: compiled code compares the engine's epoch with the Store's deadline at
  loop heads and function entries, far cheaper than fuel checks; :class:`EpochTicker` moves
  the epoch on, and each Store's epoch callback decides (see ``deadline.py``);
- a bounded wasm stack (``max_wasm_stack``): deep recursion traps, it never aborts the process;
- per-Store limits: one memory of at most ``limits.memory_bytes`` (``memory.grow`` past it
  returns -1), one instance, small tables;
- no threads, no shared memory, no memory64, no multi-memory: ABI v1 has one 32-bit memory.

The host functions are defined once, on a Linker shared by every Store of the Engine, and a
compiled module is pre-linked to it once (``InstancePre``), so instantiating a plugin only
creates its Store and instance (see ``hostlink.py`` for how a shared host function finds
the plugin that called it).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import wasmtime

from forgeoned.adapters.wasm.hostlink import define_host_functions
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.core.abi import MEMORY_EXPORT, FuncSig
from forgeoned.core.manifest import WASM_PAGE, Limits
from forgeoned.core.module_interface import AbiShape, ExternDecl, ExternKind, ModuleInterface
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.errors import ArtifactTooLargeError, LoadError, MalformedModuleError

WASM_MAGIC: Final = b"\0asm"
MAX_TABLE_ELEMENTS: Final = 100_000


def _summary(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _decl(name: str, ty: object, module: str = "") -> ExternDecl:
    if isinstance(ty, wasmtime.FuncType):
        sig = FuncSig(tuple(str(t) for t in ty.params), tuple(str(t) for t in ty.results))
        return ExternDecl(name, ExternKind.FUNC, sig, module)
    kinds = {wasmtime.MemoryType: ExternKind.MEMORY, wasmtime.TableType: ExternKind.TABLE}
    kind = kinds.get(type(ty), ExternKind.GLOBAL if isinstance(ty, wasmtime.GlobalType) else None)
    return ExternDecl(name, kind or ExternKind.OTHER, None, module)


def read_interface(module: wasmtime.Module) -> ModuleInterface:
    """Ask wasmtime for the module's exports and imports (≈0.4 ms of Python for a plugin:
    one wrapper object per type, name and value type), once, when it is compiled."""
    exports = [(e.name, e.type) for e in module.exports]
    pages = next(
        (
            t.limits.min
            for n, t in exports
            if n == MEMORY_EXPORT and isinstance(t, wasmtime.MemoryType)
        ),
        0,
    )
    return ModuleInterface(
        tuple(_decl(name, ty) for name, ty in exports),
        tuple(_decl(i.name or "", i.type, i.module) for i in module.imports),
        pages,
    )


class EpochTicker:
    """Increments ``engine``'s epoch every ``interval_s`` seconds until :meth:`stop`."""

    def __init__(self, engine: wasmtime.Engine, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"epoch interval must be positive, got {interval_s}")
        self._engine = engine
        self._interval = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forgeoned-epoch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Event.wait(timeout) is the ticker's clock: an increment can come late under load,
        # which only makes deadlines later, never earlier than asked for.
        while not self._stopping.wait(self._interval):
            self._engine.increment_epoch()

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()


@functools.lru_cache(maxsize=256)
def _checked(interface: ModuleInterface) -> tuple[AbiShape, Mapping[str, int]]:
    """The ABI check (raises LoadError) and the raw call slots per exported function (so an
    instance binds its exports without asking wasmtime for their types). A pure function of
    the interface, and plugins built alike share one: checked once per distinct interface."""
    return interface.validate(), MappingProxyType(interface.func_slots())


class CompiledModule:
    """A compiled, ABI-checked module, pre-linked to the runtime's host functions
    (``InstancePre``: imports resolved once); instantiate it any number of times.

    Built from the module and its :class:`ModuleInterface`, which the caller either read from
    the module (:func:`read_interface`) or kept from when it was compiled (the cache)."""

    __slots__ = ("func_slots", "interface", "memory_min_bytes", "module", "pre", "shape")

    def __init__(
        self, module: wasmtime.Module, linker: wasmtime.Linker, interface: ModuleInterface
    ) -> None:
        self.shape, self.func_slots = _checked(interface)
        self.interface = interface
        self.memory_min_bytes: int = interface.memory_min_pages * WASM_PAGE
        self.module = module
        try:
            self.pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:  # validate_abi admits only imports we define
            raise LoadError(f"cannot link module: {_summary(exc)}") from exc

    @property
    def has_handle(self) -> bool:
        return self.shape.has_handle

    @property
    def has_tick(self) -> bool:
        return self.shape.has_tick

    def serialize(self) -> bytes:
        """Native code for :meth:`WasmtimeRuntime.deserialize` (same wasmtime, same config)."""
        return bytes(self.module.serialize())


class WasmtimeRuntime:
    """Compiles and instantiates plugins; owns the Engine and its epoch ticker thread."""

    def __init__(
        self,
        *,
        epoch_interval_s: float = 0.005,
        max_module_bytes: int = MAX_MODULE_BYTES,
        max_wasm_stack: int = 512 << 10,
    ) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.max_wasm_stack = max_wasm_stack
        config.wasm_threads = False
        config.shared_memory = False
        config.wasm_memory64 = False
        config.wasm_multi_memory = False
        self._engine = wasmtime.Engine(config)
        # One Linker for every Store of this Engine: the host functions are defined once
        # (see hostlink.py for how a shared callback finds the calling plugin).
        self._linker = wasmtime.Linker(self._engine)
        define_host_functions(self._linker)
        self._max_module_bytes = max_module_bytes
        self.epoch_interval_s = epoch_interval_s
        self._ticker = EpochTicker(self._engine, epoch_interval_s)
        self._ticker.start()
        self._closed = False

    @property
    def engine(self) -> wasmtime.Engine:
        return self._engine

    def compile(self, wasm: bytes) -> CompiledModule:
        """Compile and ABI-check ``wasm``; the size cap is enforced before any parsing."""
        if len(wasm) > self._max_module_bytes:
            raise ArtifactTooLargeError(
                f"module is {len(wasm)} bytes, over the {self._max_module_bytes}-byte cap"
            )
        if not wasm.startswith(WASM_MAGIC):  # wasmtime-py would parse anything else as WAT
            raise MalformedModuleError("not a WebAssembly binary module (bad magic number)")
        try:
            module = wasmtime.Module(self._engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise MalformedModuleError(f"invalid WebAssembly module: {_summary(exc)}") from exc
        return CompiledModule(module, self._linker, read_interface(module))

    def deserialize(self, data: bytes, interface: ModuleInterface | None = None) -> CompiledModule:
        """Load :meth:`CompiledModule.serialize` output. Only ever pass bytes this host wrote:
        native code is trusted as-is. wasmtime copies ``data`` into memory of its own, so
        the process keeps the whole native code resident: the daemon loads from the cache
        file instead (:meth:`deserialize_file`)."""
        try:
            module = wasmtime.Module.deserialize(self._engine, data)
        except wasmtime.WasmtimeError as exc:
            raise LoadError(f"cannot load precompiled module: {_summary(exc)}") from exc
        return CompiledModule(module, self._linker, interface or read_interface(module))

    def deserialize_file(
        self, path: str, interface: ModuleInterface | None = None
    ) -> CompiledModule:
        """Like :meth:`deserialize`, from a file wasmtime maps rather than copies: the native
        code stays file-backed (page cache), only the pages that run become resident, and
        the kernel may drop them again under memory pressure."""
        try:
            module = wasmtime.Module.deserialize_file(self._engine, path)
        except wasmtime.WasmtimeError as exc:
            raise LoadError(f"cannot load precompiled module: {_summary(exc)}") from exc
        return CompiledModule(module, self._linker, interface or read_interface(module))

    def instantiate(
        self, module: CompiledModule, limits: Limits, host: HostServices
    ) -> PluginInstance:
        """A new sandboxed instance; LoadError when the module does not fit ``limits``."""
        if module.memory_min_bytes > limits.memory_bytes:
            raise LoadError(
                f"memory {MEMORY_EXPORT!r} declares a minimum of {module.memory_min_bytes} bytes, "
                f"over the plugin's memory cap of {limits.memory_bytes} bytes"
            )
        store = wasmtime.Store(self._engine)
        store.set_limits(
            memory_size=limits.memory_bytes,
            table_elements=MAX_TABLE_ELEMENTS,
            instances=1,
            tables=4,
            memories=1,
        )
        instance = PluginInstance(store, limits, host)
        try:
            # A start function runs here: it gets the same fuel and deadline as any call.
            instance.prepare_entry()
            try:
                raw = module.pre.instantiate(store)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                raise instance.entry_failed(exc) from exc
            finally:
                instance.entry_done()
            instance.attach(raw, module.func_slots)
        except BaseException:
            instance.close()
            raise
        return instance

    def close(self) -> None:
        """Stop the epoch ticker (idempotent). Instances must be closed by their owners."""
        if not self._closed:
            self._closed = True
            self._ticker.stop()
            self._linker.close()  # compiled modules and instances keep what they use alive

    def __enter__(self) -> WasmtimeRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
