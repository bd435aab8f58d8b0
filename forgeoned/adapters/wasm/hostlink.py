"""The link between Stores and the host: guest memory access and the raw host callbacks.

The ``forgeone.*`` imports are defined ONCE per Engine, in a Linker shared by every
Store (:func:`define_host_functions`), as raw ``wasmtime_linker_define_func_unchecked``
callbacks; a module's imports are then resolved once (``InstancePre``) and each new Store
only instantiates. Defining them per Store cost ~0.3 ms of every instantiation.

Which plugin is calling? A shared callback cannot close over one Store's services, so it
reads the *active link* of its thread (:data:`ACTIVE`). That is exact, not a guess, because:

- wasm only runs inside a C call made by ``PluginInstance`` (an export call or the start
  function during instantiation), and that code sets ``ACTIVE`` to its own
  :class:`HostLink`'s immediately before the C call, on the same thread;
- a host callback runs on the thread that made the C call, before that call returns;
- a host function never calls into wasm, so calls never nest across Stores;
- ``ACTIVE`` is a ContextVar, and every thread has its own context, so concurrent calls of
  other plugins on other threads (the GIL is released while wasm runs) each see their own;
  the value is set in the context that is current when the C call is made, which is the
  one the callback runs in (nothing can switch contexts during a synchronous C call).

Reading it costs ~20 ns per host call; a threading.local ~100 ns inside a ctypes callback,
and asking wasmtime for the caller's context (``wasmtime_caller_context`` + a dict) ~200 ns,
a fifth of a host call.

An exception escaping a host function never unwinds through wasm frames: the callback records
it on the active link, counts ``(function, "error")`` and returns a trap, and the instance
turns that into ``PluginTrap(kind=HOST_ERROR)`` (or re-raises a KeyboardInterrupt).
"""

from __future__ import annotations

import ctypes
import struct
from contextvars import ContextVar
from typing import Any, Final

import wasmtime

from forgeoned.adapters.wasm import fastcall as fast
from forgeoned.adapters.wasm.hostabi import HostCalls
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.core.abi import HOST_FUNCTIONS, IMPORT_MODULE
from forgeoned.core.stats import PluginStats

_VALTYPES: Final = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f64": wasmtime.ValType.f64,
}


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

    def read_pair(self, p1: int, n1: int, p2: int, n2: int) -> tuple[bytes, bytes] | None:
        size = self.size()
        if p1 + n1 > size or p2 + n2 > size:
            return None
        base = fast.memory_data(self._ctx, self._mem)
        return ctypes.string_at(base + p1, n1), ctypes.string_at(base + p2, n2)

    def write(self, ptr: int, data: bytes) -> bool:
        if ptr + len(data) > self.size():
            return False
        ctypes.memmove(fast.memory_data(self._ctx, self._mem) + ptr, data, len(data))
        return True


class HostLink:
    """The host side of one Store: its :class:`HostCalls`, pre-bound in ABI table order."""

    __slots__ = ("calls", "fns", "host_error", "hostcalls")

    def __init__(self, services: HostServices, memory: GuestMemoryView, stats: PluginStats) -> None:
        """``stats``: the counters this Store's instance writes (its own: core/stats.py)."""
        self.calls = HostCalls(services, memory, stats)
        # What a callback finds in ACTIVE: the host functions, bound once here (a
        # bound-method lookup per host call is a measurable cost), then this link itself.
        self.fns: tuple[Any, ...] = (
            *(getattr(self.calls, name) for name in HOST_FUNCTIONS),
            self,
        )
        self.hostcalls = stats.hostcalls
        self.host_error: BaseException | None = None  # set by a failed callback

    def take_error(self) -> BaseException | None:
        error, self.host_error = self.host_error, None
        return error


# Per thread (each thread has its own context): ``HostLink.fns`` of the Store whose wasm
# this thread runs (or ran last). A ContextVar rather than a threading.local because its get()
# is a cached pointer comparison: ~20 ns inside a ctypes callback, against ~100 ns.
ACTIVE: Final[ContextVar[tuple[Any, ...]]] = ContextVar("forgeoned_active_host", default=())
_LINK: Final = len(HOST_FUNCTIONS)
_U32: Final = 0xFFFFFFFF  # index of the HostLink itself in HostLink.fns


def _failed(name: str, exc: BaseException) -> int:
    fns = ACTIVE.get()
    if fns:
        link: HostLink = fns[_LINK]
        link.host_error = exc
        link.hostcalls[(name, "error")] += 1
    return fast.trap_from_exception(exc)


def _raw_callback(index: int, name: str, arity: int) -> Any:
    """A ctypes-level callback calling the active link's ``HostCalls.<name>``."""
    active = ACTIVE.get
    k = fast.I32_STRIDE  # int32 index of argument slot 1 (slot n is at n * k)

    # One closure per arity: a generic *args version costs a list per host call.
    if arity == 0:  # time_now_ms: the only i64 result, written through an int64 view

        def cb0(_env: Any, _caller: Any, args: Any, _n: int) -> int:
            try:
                args[0] = active()[index]()
                return 0
            except BaseException as exc:
                return _failed(name, exc)

        return cb0
    if arity == 2:

        def cb2(_env: Any, _caller: Any, args: Any, _n: int) -> int:
            try:
                args[0] = active()[index](args[0], args[k])
                return 0
            except BaseException as exc:
                return _failed(name, exc)

        return cb2
    if arity == 3:

        def cb3(_env: Any, _caller: Any, args: Any, _n: int) -> int:
            try:
                args[0] = active()[index](args[0], args[k], args[2 * k])
                return 0
            except BaseException as exc:
                return _failed(name, exc)

        return cb3

    def cbn(_env: Any, _caller: Any, args: Any, _n: int) -> int:
        try:
            args[0] = active()[index](*[args[i * k] for i in range(arity)])
            return 0
        except BaseException as exc:
            return _failed(name, exc)

    return cbn


def _metric_callback(index: int, name: str) -> Any:
    """The callback of a metric call: four i32 then an f64. The slots are read as int64 (an
    i32 is the low half of its slot; the f64 is its slot's bits), cheaper than the union."""
    active = ACTIVE.get
    k = fast.I32_STRIDE // 2  # int64 index of slot 1
    to_f64 = struct.Struct("<d").unpack
    pack = struct.Struct("<q").pack

    def cbf(_env: Any, _caller: Any, args: Any, _n: int) -> int:
        try:
            value = to_f64(pack(args[4 * k]))[0]
            args[0] = active()[index](args[0], args[k], args[2 * k], args[3 * k], value) & _U32
            return 0
        except BaseException as exc:
            return _failed(name, exc)

    return cbf


def _make_callbacks() -> tuple[Any, ...]:
    out = []
    for index, (name, spec) in enumerate(HOST_FUNCTIONS.items()):
        if "f64" in spec.sig.params:
            out.append(fast.HostCallbackI64(_metric_callback(index, name)))
            continue
        raw = _raw_callback(index, name, len(spec.sig.params))
        i64 = spec.sig.results == ("i64",)
        out.append(fast.HostCallbackI64(raw) if i64 else fast.HostCallbackI32(raw))
    return tuple(out)


# The ctypes thunks, made once per process and never freed: they hold no per-Store state, and
# a Linker (or a Store instantiated through it) must never outlive the code it points to.
_CALLBACKS: Final = _make_callbacks()


def define_host_functions(linker: wasmtime.Linker) -> None:
    """Define the ``forgeone.*`` imports in ``linker`` (once per Engine)."""
    for (name, spec), callback in zip(HOST_FUNCTIONS.items(), _CALLBACKS, strict=True):
        functype = wasmtime.FuncType(
            [_VALTYPES[t]() for t in spec.sig.params],
            [_VALTYPES[t]() for t in spec.sig.results],
        )
        fast.define_host_func(linker, IMPORT_MODULE, name, functype, callback)
