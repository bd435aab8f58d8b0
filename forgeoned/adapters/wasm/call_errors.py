"""What a failed call of a plugin instance becomes: a typed error, counted by its outcome.

:class:`~forgeoned.adapters.wasm.instance.PluginInstance` runs the calls; when one fails it
hands what it knows to a function here, which decides the error the caller sees:

- a trap (or a wasmtime error) of a call: a :class:`PluginTrap` whose kind is why wasm
  stopped, unless the instance stopped it (its deadline passed, DEADLINE; the host
  interrupted it, INTERRUPTED) or a host function failed under it (HOST_ERROR);
- a failure of the start function while instantiating: the same, or a :class:`LoadError`
  when nothing ran (the module does not fit the Store);
- a non-zero status of ``handle``, a named function or ``tick``: the plugin's answer, an
  :class:`ApplicationError` (not a fault);
- a call of a function the manifest does not list, or an ``alloc`` that returned a buffer
  outside the plugin's memory.

All of this is off the hot path: it runs only once a call has already failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Final, TypeAlias

import wasmtime

from forgeoned.adapters.wasm import fastcall as fast
from forgeoned.errors import (
    ApplicationError,
    ForgeonedError,
    LoadError,
    NotFoundError,
    PluginStatusError,
    PluginTrap,
    TrapKind,
)

START: Final = "(start)"  # the export label of the start function in counters and traps
Calls: TypeAlias = Counter[tuple[str, str]]  # (export, outcome): an instance's own call counters


def call_trap(
    plugin: str,
    export: str,
    error: int | None,
    trap: int | None,
    stop_reason: TrapKind | None,
    host_error: BaseException | None,
    calls: Calls,
) -> PluginTrap:
    """The trap of a failed call of ``export``; frees the ``error`` or ``trap`` the call
    returned. A KeyboardInterrupt or SystemExit raised inside a host call is raised again."""
    kind, cause = fast.consume_failure(error, trap)
    if stop_reason is not None:
        kind = stop_reason
    elif host_error is not None:
        if not isinstance(host_error, Exception):
            raise host_error  # KeyboardInterrupt/SystemExit raised inside a host call
        kind, cause = TrapKind.HOST_ERROR, f"host error: {host_error}"
    calls[(export, kind.value)] += 1
    return PluginTrap(f"plugin {plugin}: {export!r} trapped ({kind.value}): {cause}", kind, export)


def start_error(
    plugin: str,
    exc: Exception,
    stop_reason: TrapKind | None,
    host_error: BaseException | None,
    calls: Calls,
) -> ForgeonedError:
    """The error for a failed instantiation: a trap of the start function or a LoadError."""
    cause = fast.summary(str(exc))
    kind = stop_reason
    if kind is None and host_error is not None:
        kind, cause = TrapKind.HOST_ERROR, f"host error: {host_error}"
    if kind is None and isinstance(exc, wasmtime.Trap) and exc.trap_code is not None:
        kind = fast.TRAP_KINDS.get(exc.trap_code, TrapKind.OTHER)
    if kind is not None:
        calls[(START, kind.value)] += 1
        return PluginTrap(f"plugin {plugin}: start function trapped ({kind.value}): {cause}",
                          kind, START)  # fmt: skip
    return LoadError(f"cannot instantiate plugin {plugin}: {cause}")


def application_error(plugin: str, exc: PluginStatusError, output: bytes) -> ApplicationError:
    """The plugin's answer: a non-zero status of ``exc.export``, with the output so far."""
    return ApplicationError(
        f"plugin {plugin}: {exc.export!r} returned status {exc.status}",
        export=exc.export,
        status=exc.status,
        output=output,
    )


def alloc_outside_memory(plugin: str, length: int, ptr: int, size: int, calls: Calls) -> PluginTrap:
    """``alloc(length)`` returned ``ptr``, where ``length`` bytes do not fit a ``size``-byte
    memory: the input cannot be copied in."""
    calls[("alloc", TrapKind.MEMORY_OUT_OF_BOUNDS.value)] += 1
    return PluginTrap(
        f"plugin {plugin}: alloc({length}) returned {ptr}, outside its {size}-byte memory",
        TrapKind.MEMORY_OUT_OF_BOUNDS,
        "alloc",
    )


def undeclared_function(plugin: str, export: str, functions: Iterable[str]) -> NotFoundError:
    """The error of a call of ``export``, which the manifest's ``functions`` do not list."""
    listed = ", ".join(sorted(functions)) or "none"
    return NotFoundError(
        f"plugin {plugin} has no function {export[:64]!r} (its manifest lists: {listed})"
    )
