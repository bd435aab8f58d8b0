"""One running plugin instance: a wasmtime Store, its limits, its host functions, its calls.

Every call goes through :meth:`PluginInstance._run`: refill the fuel to ``fuel_per_call``, arm
the wall-clock deadline, call through the raw C API, then account fuel, duration and outcome in
the plugin's :class:`PluginStats`, and turn a failure into a typed :class:`PluginTrap` (which
error a failure becomes: :mod:`.call_errors`).

Deadlines: the Store's epoch callback stops a call whose deadline passed or that the host
interrupted (:mod:`.deadline`, the base class); arming a deadline is a plain attribute write.

A Store is not thread-safe: one thread at a time per instance (``interrupt`` excepted).
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import wasmtime

from forgeoned.adapters.wasm import fastcall as fast
from forgeoned.adapters.wasm.call_errors import (
    alloc_outside_memory,
    application_error,
    call_trap,
    start_error,
    undeclared_function,
)
from forgeoned.adapters.wasm.deadline import EpochDeadline
from forgeoned.adapters.wasm.hostlink import ACTIVE, GuestMemoryView, HostLink
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.core.abi import MEMORY_EXPORT, LifecycleExport
from forgeoned.core.manifest import Limits
from forgeoned.errors import (
    ConflictError,
    ForgeonedError,
    LoadError,
    NotFoundError,
    PluginStatusError,
    PluginTrap,
)

log = logging.getLogger(__name__)
_U32: Final = 0xFFFFFFFF
_now: Final = time.perf_counter
_bisect: Final = bisect.bisect_left
_set_fuel: Final = fast.set_fuel
_get_fuel: Final = fast.get_fuel
_call: Final = fast.call_unchecked
_active_get: Final = ACTIVE.get
_active_set: Final = ACTIVE.set


class PluginInstance(EpochDeadline):
    """An instantiated plugin. Created by :meth:`WasmtimeRuntime.instantiate`."""

    def __init__(
        self,
        store: wasmtime.Store,
        limits: Limits,
        host: HostServices,
    ) -> None:
        self._store = store
        self._ctx = fast.store_context(store)
        self._fuel_per_call = limits.fuel_per_call
        self._fuel_c = ctypes.c_uint64(limits.fuel_per_call)  # prebuilt: no conversion per call
        self._timeout = limits.call_timeout_ms / 1000.0
        self.services = host
        # This instance's own counters: nobody else writes them while it lives, so the
        # lock-free bumps below are exact even when other instances of the plugin run on
        # other threads (why, and how readers add them up: core/stats.py).
        self._stats = stats = host.stats.claim_writer()
        self._calls = stats.calls
        self._duration = stats.call_duration
        self._fuel = ctypes.c_uint64()
        self._fuel_addr = ctypes.addressof(self._fuel)
        self._funcs: dict[str, fast.RawFunc] = {}  # bound on first use (see attach)
        self._raw: Any = None
        self._slots: Mapping[str, int] = {}
        self._memory = GuestMemoryView(self._ctx)
        self._link = HostLink(host, self._memory, stats)
        self.host = self._link.calls
        self.host.deadline = self._call_deadline  # http_request's time is bounded by it
        self._host_fns = self._link.fns
        self._closed = False
        super().__init__(store)  # the deadline state, and the epoch callback that enforces it

    def attach(self, instance: wasmtime.Instance, funcs: Mapping[str, int]) -> None:
        """Bind the memory of a fresh instance (called once by the runtime); ``funcs``
        (exported function → raw slots, from the compiled module) are bound at first use: a
        start needs only ``init`` and ``start`` (binding all saved ≈30 µs and ~40 objects
        per instance)."""
        self._raw = fast.raw_instance(instance)
        memory = fast.export_item(self._ctx, self._raw, MEMORY_EXPORT, fast.EXTERN_MEMORY)
        if memory is None:
            raise LoadError(f"plugin {self.services.plugin}: no exported memory")
        self._memory.bind(memory.of.memory)
        self._slots = funcs

    def _bind(self, name: str) -> fast.RawFunc | None:
        """The exported function ``name``, bound now (None if the module has no such one)."""
        if self._closed:  # the Store is gone: nothing may be looked up in it
            raise ConflictError(f"plugin {self.services.plugin}: instance is closed")
        slots = self._slots.get(name)
        if slots is None:
            return None
        item = fast.export_item(self._ctx, self._raw, name, fast.EXTERN_FUNC)
        if item is None:  # the module's interface promised it: a broken cache entry
            raise LoadError(f"plugin {self.services.plugin}: no exported function {name!r}")
        func = self._funcs[name] = fast.RawFunc(name, item.of.func, slots)
        return func

    # --- calls ------------------------------------------------------------------------------

    def prepare_entry(self) -> None:
        """Arm fuel and deadline for code the runtime runs outside `_run` (start function)."""
        fast.set_fuel(self._ctx, self._fuel_c)
        _active_set(self._host_fns)  # the start function's host calls are this Store's
        self._stop_reason = None
        self._deadline = _now() + self._timeout
        self._calling = True

    def _run(self, func: fast.RawFunc, status: bool) -> int:
        """Call ``func`` on its ``raw`` slots with fuel, deadline and accounting: its i32 result.

        The hot path: kept flat on purpose (locals instead of repeated attribute lookups, no
        helper calls) because each Python operation here is a visible share of a ~2 µs call.
        """
        if self._closed:
            raise ConflictError(f"plugin {self.services.plugin}: instance is closed")
        ctx = self._ctx
        self._interrupt = False
        self._stop_reason = None
        start = _now()
        self._deadline = start + self._timeout
        self._calling = True
        _set_fuel(ctx, self._fuel_c)
        fns = self._host_fns  # whose host calls these are: see hostlink.py
        if _active_get() is not fns:  # set only on a change of Store: set() makes a Context
            _active_set(fns)
        error = _call(ctx, func.func, func.raw_addr, func.slots, func.trap_addr)
        self._calling = False
        _get_fuel(ctx, self._fuel_addr)
        self._stats.fuel_consumed += self._fuel_per_call - self._fuel.value
        # Histogram.observe minus its lock: this instance's histogram, written only by the
        # thread running this Store (see core/stats.py).
        elapsed = _now() - start
        hist = self._duration
        hist.counts[_bisect(hist.bounds, elapsed)] += 1
        hist.total += elapsed
        hist.count += 1
        if error or func.trap.value:
            raise self._trap(func, error)
        value: int = func.raw[0].i32
        if status and value != 0:
            self._calls[func.error_key] += 1
            raise PluginStatusError(func.name, value)
        self._calls[func.ok_key] += 1
        return value

    def _trap(self, func: fast.RawFunc, error: int | None) -> PluginTrap:
        trap, func.trap.value = func.trap.value, None
        stop_reason, self._stop_reason = self._stop_reason, None
        host_error = self._link.take_error()
        plugin = self.services.plugin
        return call_trap(plugin, func.name, error, trap, stop_reason, host_error, self._calls)

    def entry_done(self) -> None:
        self._calling = False

    def entry_failed(self, exc: Exception) -> ForgeonedError:
        """The error for a failed instantiation: a trap of the start function or a LoadError."""
        kind, self._stop_reason = self._stop_reason, None
        host_error = self._link.take_error()
        return start_error(self.services.plugin, exc, kind, host_error, self._calls)

    def call(self, export: LifecycleExport, timeout_s: float | None = None) -> None:
        """Call a lifecycle export; PluginTrap on a trap, PluginStatusError on non-zero.
        ``timeout_s`` shortens the deadline of this call below ``call_timeout_ms``."""
        self.host.report_suppressed()  # denial summaries now due (rare: see hostabi)
        name = export.value
        func = self._funcs.get(name) or self._bind(name)
        if func is None:
            raise LoadError(f"plugin {self.services.plugin}: no exported function {name!r}")
        usual = self._timeout
        if timeout_s is not None:
            self._timeout = min(usual, max(0.0, timeout_s))
        try:
            self._run(func, status=True)
        finally:
            self._timeout = usual

    def tick(self) -> None:
        """Call ``tick``; a non-zero status is the plugin's answer (:class:`ApplicationError`,
        counted as an ``error`` outcome), not a fault."""
        func = self._funcs.get("tick") or self._bind("tick")
        if func is None:
            raise NotFoundError(f"plugin {self.services.plugin} exports no 'tick'")
        self.host.report_suppressed()
        try:
            self._run(func, status=True)
        except PluginStatusError as exc:
            raise application_error(self.services.plugin, exc, b"") from None

    def export_i32(self, export: str) -> Callable[..., int]:
        """A cached caller of any exported function of i32 params returning one i32, with
        the same fuel, deadline and accounting as lifecycle calls (the benchmark's path)."""
        func = self._funcs.get(export) or self._bind(export)
        if func is None:
            raise NotFoundError(f"plugin {self.services.plugin} exports no function {export!r}")
        run, raw = self._run, func.raw
        if func.slots == 2:
            slot0, slot1 = raw[0], raw[1]

            def call2(a: int, b: int) -> int:
                slot0.i32 = a
                slot1.i32 = b
                return run(func, False)

            return call2

        def call(*args: int) -> int:
            for index, arg in enumerate(args):
                raw[index].i32 = arg
            return run(func, False)

        return call

    def call_i32(self, export: str, *args: int) -> int:
        return self.export_i32(export)(*args)

    def handle(self, data: bytes, export: str = "handle") -> bytes:
        """alloc(len) + copy ``data`` in + handle(ptr, len); returns what `output` collected.
        ``export``: ``handle``, or a named function the manifest lists (same conventions).

        A non-zero status is the plugin's answer: :class:`ApplicationError` carrying the
        status and the output collected so far (the instance and its memory stay as they are).
        """
        funcs, host = self._funcs, self.host
        if export != "handle" and export not in self.services.functions:
            raise undeclared_function(self.services.plugin, export, self.services.functions)
        alloc = funcs.get("alloc") or self._bind("alloc")
        handle = funcs.get(export) or self._bind(export)
        if alloc is None or handle is None:
            raise NotFoundError(f"plugin {self.services.plugin} exports no {export!r}")
        alloc.raw[0].i32 = len(data)
        ptr = self._run(alloc, status=False)
        if not self._memory.write(ptr & _U32, data):
            size, plugin = self._memory.size(), self.services.plugin
            raise alloc_outside_memory(plugin, len(data), ptr & _U32, size, self._calls)
        host.output_buffer = out = bytearray()
        try:
            handle.raw[0].i32 = ptr
            handle.raw[1].i32 = len(data)
            try:
                self._run(handle, status=True)
            except PluginStatusError as exc:
                raise application_error(self.services.plugin, exc, bytes(out)) from None
            return bytes(out)
        finally:
            host.output_buffer = None

    @property
    def fuel_consumed(self) -> int:
        return self._stats.fuel_consumed

    @property
    def memory_bytes(self) -> int:
        return 0 if self._closed else self._memory.size()

    def close(self) -> None:
        """Free the Store (idempotent). Must not race a running call."""
        if self._closed:
            return
        self._closed = True
        try:
            self.host.report_suppressed(final=True)
        except Exception:  # the audit sink failed: closing must still free the Store
            log.exception("plugin %s: could not audit suppressed denials", self.services.plugin)
        finally:
            self._store.close()
            if _active_get() is self._host_fns:  # let this thread forget the closed Store
                _active_set(())
            self.services.stats.release_writer(self._stats)  # no call can write it now

    def __enter__(self) -> PluginInstance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
