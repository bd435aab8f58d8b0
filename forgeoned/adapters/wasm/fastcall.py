"""The fast call path: wasmtime's C API through ctypes, without wasmtime-py's per-call boxing.

wasmtime-py's ``Func.__call__`` asks for the function type and builds ``Val`` objects on every
call (~24 µs here) and its host callbacks convert every value the same way (~9 µs). This module
keeps private ctypes prototypes of the few C functions on the hot path, declared with plain
``c_void_p`` arguments so ctypes converts nothing but integers, and calls them with
preallocated ``wasmtime_val_raw_t`` arrays (``wasmtime_func_call_unchecked``); host functions
are raw callbacks (``wasmtime_linker_define_func_unchecked``).

This module is the only place that touches wasmtime-py internals (``wasmtime._bindings``,
``wasmtime._ffi``, ``Store._context()``, ``Instance._instance``): the rest of forgeoned goes
through :func:`store_context`, :func:`raw_instance` and the prototypes below. Those names are
not wasmtime-py's public API and the layouts are those of exactly one release, so importing
this module checks the installed wasmtime against :data:`PINNED_WASMTIME` and refuses with
:class:`~forgeoned.errors.RuntimeVersionError` otherwise (the daemon prints it as one line
and exits 69, EX_UNAVAILABLE) rather than calling C functions with guessed layouts.

Upgrading wasmtime, a checklist:

1. Change the pin in ``pyproject.toml`` and :data:`PINNED_WASMTIME` together (a test compares
   them).
2. Read wasmtime-py's diff for the internals used here: ``_bindings.py`` (the ``wasmtime_*``
   structs, ``wasmtime_val_raw``, ``wasm_byte_vec_t``), ``_ffi.py`` (``dll``,
   ``WASMTIME_EXTERN_FUNC`` / ``_MEMORY``), ``_store.py`` (``Store._context()``),
   ``_instance.py`` (``Instance._instance``), and ``ptr()`` of Store, Linker and FuncType.
3. Check every prototype declared with :func:`_proto` against the C API headers of the new
   release (``func.h``, ``linker.h``, ``store.h``, ``memory.h``, ``instance.h``, ``trap.h``,
   ``error.h``): argument order and types, return type, who frees what.
4. Check the layouts the callbacks assume: ``sizeof(wasmtime_val_raw_t)`` (16, so
   :data:`I32_STRIDE` is 4), the epoch-deadline callback's signature and the value of
   ``WASMTIME_UPDATE_DEADLINE_CONTINUE`` (0), and the ``TrapCode`` values in :data:`TRAP_KINDS`.
5. Run ``tests/integration/test_runtime_fastcall.py`` (every result against the high-level
   path) and the runtime and daemon suites, then ``bench/calls.py`` for the per-call cost.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
from collections.abc import Callable
from typing import Any, Final, cast

import wasmtime

from forgeoned.errors import RuntimeVersionError, TrapKind

PINNED_WASMTIME: Final = "50.0.1"


def check_runtime_version(installed: str | None, pinned: str = PINNED_WASMTIME) -> None:
    """Raise :class:`RuntimeVersionError` unless ``installed`` is exactly ``pinned``."""
    if installed != pinned:
        raise RuntimeVersionError(
            f"wasmtime {installed or '(not installed)'} is installed, but the fast call path "
            f"is built for exactly wasmtime {pinned} (it uses wasmtime-py internals): "
            f"install wasmtime=={pinned}"
        )


def installed_wasmtime() -> str | None:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        return None


check_runtime_version(installed_wasmtime())  # before anything private is imported

from wasmtime import _bindings as bindings  # noqa: E402  (only once the version is known)
from wasmtime import _ffi as ffi  # noqa: E402

_V = ctypes.c_void_p
_dll: Final = ffi.dll
# The same library loaded as a PyDLL: its functions are called WITHOUT releasing the GIL.
# Only for C functions that return at once and never run wasm or call back into Python (fuel,
# memory size/base): releasing and re-taking the GIL costs more than such a call itself.
# Anything that runs wasm must go through `_dll`, or no other thread (the epoch ticker
# included) could run while a plugin computes.
_quick_dll: Final = ctypes.PyDLL(_dll._name, handle=_dll._handle)


def _proto(name: str, restype: Any, *argtypes: Any, dll: Any = _dll) -> Any:
    func = dll[name]  # indexing makes a new function object: wasmtime-py's stays untouched
    func.restype = restype
    func.argtypes = list(argtypes)
    return func


call_unchecked: Final = _proto("wasmtime_func_call_unchecked", _V, _V, _V, _V, ctypes.c_size_t, _V)
# pass a c_uint64 to set_fuel
set_fuel: Final = _proto("wasmtime_context_set_fuel", _V, _V, ctypes.c_uint64, dll=_quick_dll)
get_fuel: Final = _proto("wasmtime_context_get_fuel", _V, _V, _V, dll=_quick_dll)
memory_data: Final = _proto("wasmtime_memory_data", _V, _V, _V, dll=_quick_dll)
memory_data_size: Final = _proto(
    "wasmtime_memory_data_size", ctypes.c_size_t, _V, _V, dll=_quick_dll
)
_export_get: Final = _proto(
    "wasmtime_instance_export_get", ctypes.c_bool, _V, _V, ctypes.c_char_p, ctypes.c_size_t, _V
)
_trap_code: Final = _proto("wasmtime_trap_code", ctypes.c_bool, _V, _V)
_trap_message: Final = _proto("wasm_trap_message", None, _V, _V)
_trap_delete: Final = _proto("wasm_trap_delete", None, _V)
_trap_new: Final = _proto("wasmtime_trap_new", _V, ctypes.c_char_p, ctypes.c_size_t)
_error_message: Final = _proto("wasmtime_error_message", None, _V, _V)
_error_delete: Final = _proto("wasmtime_error_delete", None, _V)
error_new: Final = _proto("wasmtime_error_new", _V, ctypes.c_char_p)
_byte_vec_delete: Final = _proto("wasm_byte_vec_delete", None, _V)

RawArray = ctypes.Array[bindings.wasmtime_val_raw]
RawArgs = "ctypes._Pointer[bindings.wasmtime_val_raw]"
HostImpl = Callable[[Any], None]  # reads its arguments from, and writes its result into, args
# Host callbacks: (env, caller, args_and_results, count) -> wasm_trap_t* or 0. The slots are
# wasmtime_val_raw_t (16 bytes each); the callbacks see them as a flat int32 (or int64) array
# because indexing a plain integer pointer is the cheapest access ctypes offers (~30 % less
# per host call than going through the union). An i32 in slot k is int32 index k * I32_STRIDE.
I32_STRIDE: Final = ctypes.sizeof(bindings.wasmtime_val_raw) // 4
HostCallbackI32: Final = ctypes.CFUNCTYPE(
    ctypes.c_size_t, _V, _V, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t
)
HostCallbackI64: Final = ctypes.CFUNCTYPE(
    ctypes.c_size_t, _V, _V, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t
)
# The metric calls take an f64 after four i32: they read the slots through the union.
HostCallbackRaw: Final = ctypes.CFUNCTYPE(
    ctypes.c_size_t, _V, _V, ctypes.POINTER(bindings.wasmtime_val_raw), ctypes.c_size_t
)
# Epoch-deadline hook: (context, env, *next_deadline_delta, *update_kind) -> wasmtime_error_t*.
EpochCallback: Final = ctypes.CFUNCTYPE(
    ctypes.c_size_t, _V, _V, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8)
)
_define_unchecked: Final = _proto(
    "wasmtime_linker_define_func_unchecked", _V, _V, ctypes.c_char_p, ctypes.c_size_t,
    ctypes.c_char_p, ctypes.c_size_t, _V, _V, _V, _V,
)  # fmt: skip
_set_epoch_callback: Final = _proto(
    "wasmtime_store_epoch_deadline_callback", None, _V, EpochCallback, _V, _V
)

EXTERN_FUNC: Final = int(ffi.WASMTIME_EXTERN_FUNC.value)
EXTERN_MEMORY: Final = int(ffi.WASMTIME_EXTERN_MEMORY.value)

TRAP_KINDS: Final[dict[wasmtime.TrapCode, TrapKind]] = {
    wasmtime.TrapCode.STACK_OVERFLOW: TrapKind.STACK_OVERFLOW,
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: TrapKind.MEMORY_OUT_OF_BOUNDS,
    wasmtime.TrapCode.HEAP_MISALIGNED: TrapKind.MEMORY_OUT_OF_BOUNDS,
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: TrapKind.INDIRECT_CALL,
    wasmtime.TrapCode.INDIRECT_CALL_TO_NULL: TrapKind.INDIRECT_CALL,
    wasmtime.TrapCode.BAD_SIGNATURE: TrapKind.INDIRECT_CALL,
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: TrapKind.INTEGER_DIVIDE_BY_ZERO,
    wasmtime.TrapCode.UNREACHABLE: TrapKind.UNREACHABLE,
    wasmtime.TrapCode.INTERRUPT: TrapKind.DEADLINE,
    wasmtime.TrapCode.OUT_OF_FUEL: TrapKind.OUT_OF_FUEL,
    wasmtime.TrapCode.ALLOCATION_TOO_LARGE: TrapKind.MEMORY,
}


def store_context(store: wasmtime.Store) -> int:
    """The address of the store's ``wasmtime_context_t`` (what the C calls take)."""
    return address(store._context())


def raw_instance(instance: wasmtime.Instance) -> Any:
    """The ``wasmtime_instance_t`` struct behind a wasmtime-py Instance."""
    return instance._instance


def address(obj: Any) -> int:
    """The address of a ctypes object or the value of a ctypes pointer, as an int."""
    if isinstance(obj, ctypes._Pointer):
        return int(ctypes.cast(obj, _V).value or 0)
    return ctypes.addressof(obj)


def _take_message(getter: Any, ptr: int) -> str:
    vec = bindings.wasm_byte_vec_t()
    getter(ptr, ctypes.addressof(vec))
    text = ctypes.string_at(vec.data, vec.size).decode("utf-8", "replace").rstrip("\0")
    _byte_vec_delete(ctypes.addressof(vec))
    return text


def summary(message: str) -> str:
    """wasmtime messages carry a backtrace; the cause is the last non-empty line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown trap"


def consume_failure(error: int | None, trap: int | None) -> tuple[TrapKind, str]:
    """Decode and free the error or trap a failed call returned: (kind, one-line cause)."""
    if trap:
        code = ctypes.c_uint8()
        kind = TrapKind.OTHER
        if _trap_code(trap, ctypes.addressof(code)):
            kind = TRAP_KINDS.get(wasmtime.TrapCode(code.value), TrapKind.OTHER)
        message = summary(_take_message(_trap_message, trap))
        _trap_delete(trap)
        return kind, message
    assert error is not None
    message = summary(_take_message(_error_message, error))
    _error_delete(error)
    return TrapKind.OTHER, message


class RawFunc:
    """One exported function of one Store, with everything a raw call needs precomputed.

    ``raw`` holds the arguments before the call and the results after it; ``trap`` receives a
    wasm_trap_t* when the call traps (and must be reset by whoever consumes it). The owner
    calls ``call_unchecked(ctx, func, raw_addr, slots, trap_addr)`` itself, inline: on this
    path even a Python method call is a measurable share of the cost. Not thread-safe, like
    the Store it belongs to.
    """

    __slots__ = (
        "_holder",
        "error_key",
        "func",
        "name",
        "ok_key",
        "raw",
        "raw_addr",
        "slots",
        "trap",
        "trap_addr",
    )

    def __init__(self, name: str, func: bindings.wasmtime_func, slots: int) -> None:
        self.name = name
        self.ok_key = (name, "ok")
        self.error_key = (name, "error")
        self._holder = func  # keeps the wasmtime_func_t struct alive
        self.func = ctypes.addressof(func)
        self.slots = max(slots, 1)
        self.raw: RawArray = (bindings.wasmtime_val_raw * self.slots)()
        self.raw_addr = ctypes.addressof(self.raw)
        self.trap = ctypes.c_void_p()
        self.trap_addr = ctypes.addressof(self.trap)


def export_item(
    context: int, instance: Any, name: str, kind: int
) -> bindings.wasmtime_extern | None:
    """The export ``name`` of a raw ``wasmtime_instance_t`` if it is of ``kind``
    (:data:`EXTERN_FUNC`, :data:`EXTERN_MEMORY`), else None.

    One C call per name, with no type look-up: the module's export types are known from
    compile time. The returned struct holds the handle (``.of.func`` / ``.of.memory``).
    """
    item = bindings.wasmtime_extern()
    raw = name.encode()
    found = _export_get(context, ctypes.addressof(instance), raw, len(raw), ctypes.addressof(item))
    return item if found and cast(int, item.kind) == kind else None


def trap_from_exception(exc: BaseException) -> int:
    """A fresh wasm_trap_t* describing a host exception (the callback's return value)."""
    message = f"host error: {type(exc).__name__}: {exc}".encode()
    return int(_trap_new(message, len(message)) or 0)


def define_host_func(
    linker: wasmtime.Linker,
    module: str,
    name: str,
    functype: wasmtime.FuncType,
    callback: Any,
) -> None:
    """Define ``module.name`` in ``linker`` as a raw (unchecked) host function.

    ``callback`` must be a :data:`HostCallbackI32` or :data:`HostCallbackI64` that the caller
    keeps alive for as long as any Store instantiated through ``linker`` lives.
    """
    mod, fname = module.encode(), name.encode()
    linker_ptr, type_ptr = address(linker.ptr()), address(functype.ptr())
    error = _define_unchecked(
        linker_ptr,
        mod,
        len(mod),
        fname,
        len(fname),
        type_ptr,
        ctypes.cast(callback, _V),
        None,
        None,
    )
    if error:
        _kind, message = consume_failure(error, None)
        raise RuntimeError(f"cannot define host function {module}.{name}: {message}")


def set_epoch_callback(store: wasmtime.Store, callback: Any) -> None:
    """Install ``callback`` (an :data:`EpochCallback`) as the store's epoch-deadline hook."""
    _set_epoch_callback(address(store.ptr()), callback, None, None)
