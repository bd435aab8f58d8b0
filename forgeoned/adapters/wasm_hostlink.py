"""The link between a Store and the host: guest memory access and the raw host callbacks.

:class:`HostLink` defines the nine ``forgeone.*`` imports in a Linker as raw
``wasmtime_linker_define_func_unchecked`` callbacks that call :class:`HostCalls` with the
plain integers wasm passed. An exception escaping a host function never unwinds through wasm
frames: the callback records it, counts ``(function, "error")`` and returns a trap, and the
instance turns that into ``PluginTrap(kind=HOST_ERROR)`` (or re-raises a KeyboardInterrupt).
"""

from __future__ import annotations

import ctypes
from typing import Any, Final

import wasmtime

from forgeoned.adapters import wasm_fastcall as fast
from forgeoned.adapters.hostabi import HostCalls, HostServices
from forgeoned.core.abi import HOST_FUNCTIONS, IMPORT_MODULE

_VALTYPES: Final = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}


class GuestMemoryView:
    """Bounds-checked reads and writes of the exported memory of a live Store.

    Empty until :meth:`bind` (a start function runs before the exports are known).
    """

    __slots__ = ("_ctx", "_holder", "_mem")

    def __init__(self, context: int) -> None:
        self._ctx = context
        self._holder: Any = None
        self._mem = 0

    def bind(self, memory: Any) -> None:
        self._holder = memory  # keeps the wasmtime_memory_t struct alive
        self._mem = ctypes.addressof(memory)

    def size(self) -> int:
        return int(fast.memory_data_size(self._ctx, self._mem)) if self._mem else 0

    def fits(self, ptr: int, length: int) -> bool:
        return ptr + length <= self.size()

    def read(self, ptr: int, length: int) -> bytes | None:
        if ptr + length > self.size():
            return None
        return ctypes.string_at(fast.memory_data(self._ctx, self._mem) + ptr, length)

    def write(self, ptr: int, data: bytes) -> bool:
        if ptr + len(data) > self.size():
            return False
        ctypes.memmove(fast.memory_data(self._ctx, self._mem) + ptr, data, len(data))
        return True


class HostLink:
    """The host functions of one Store, bound to its :class:`HostCalls`."""

    def __init__(self, services: HostServices, memory: GuestMemoryView) -> None:
        self.calls = HostCalls(services, memory)
        self._stats = services.stats
        self.host_error: BaseException | None = None  # set by a failed callback
        self._callbacks: list[Any] = []  # ctypes thunks: must live as long as the Store

    def define_all(self, linker: wasmtime.Linker) -> None:
        for name in HOST_FUNCTIONS:
            self._callbacks.append(self._define(linker, name))

    def take_error(self) -> BaseException | None:
        error, self.host_error = self.host_error, None
        return error

    def _define(self, linker: wasmtime.Linker, name: str) -> Any:
        spec = HOST_FUNCTIONS[name]
        functype = wasmtime.FuncType(
            [_VALTYPES[t]() for t in spec.sig.params], [_VALTYPES[t]() for t in spec.sig.results]
        )
        raw = self._raw_callback(name, len(spec.sig.params))
        i64 = spec.sig.results == ("i64",)
        callback = fast.HostCallbackI64(raw) if i64 else fast.HostCallbackI32(raw)
        fast.define_host_func(linker, IMPORT_MODULE, name, functype, callback)
        return callback

    def _raw_callback(self, name: str, arity: int) -> Any:
        """A ctypes-level callback calling ``HostCalls.<name>`` with the raw arguments."""

        def failed(exc: BaseException) -> int:
            self.host_error = exc
            self._stats.hostcalls[(name, "error")] += 1
            return fast.trap_from_exception(exc)

        method = getattr(self.calls, name)
        k = fast.I32_STRIDE  # int32 index of argument slot 1 (slot n is at n * k)

        # One closure per arity: a generic *args version costs a list per host call.
        if arity == 0:  # time_now_ms: the only i64 result, written through an int64 view

            def cb0(_env: Any, _caller: Any, args: Any, _n: int) -> int:
                try:
                    args[0] = method()
                    return 0
                except BaseException as exc:
                    return failed(exc)

            return cb0
        if arity == 2:

            def cb2(_env: Any, _caller: Any, args: Any, _n: int) -> int:
                try:
                    args[0] = method(args[0], args[k])
                    return 0
                except BaseException as exc:
                    return failed(exc)

            return cb2
        if arity == 3:

            def cb3(_env: Any, _caller: Any, args: Any, _n: int) -> int:
                try:
                    args[0] = method(args[0], args[k], args[2 * k])
                    return 0
                except BaseException as exc:
                    return failed(exc)

            return cb3

        def cbn(_env: Any, _caller: Any, args: Any, _n: int) -> int:
            try:
                args[0] = method(*[args[i * k] for i in range(arity)])
                return 0
            except BaseException as exc:
                return failed(exc)

        return cbn
