"""ABI v1 (DESIGN.md section 3): the export and import tables, result codes and load-time checks.

Pure on purpose: the runtime adapter turns a compiled module's export/import types into
:class:`ExternDecl` values and asks :func:`validate_abi` whether the module fits, so every
rule about what a plugin must look like is testable without wasmtime.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from forgeoned.core.manifest import Capabilities
from forgeoned.errors import LoadError

IMPORT_MODULE: Final = "forgeone"
MEMORY_EXPORT: Final = "memory"

# Negative results of host functions (DESIGN.md section 3).
NOT_FOUND: Final = -1
DENIED: Final = -2
INVALID: Final = -3
QUOTA: Final = -4


class LifecycleExport(enum.Enum):
    """The required `() -> i32` exports, in the order a plugin normally sees them."""

    INIT = "init"
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    UNLOAD = "unload"

    @property
    def status_reason(self) -> str:
        """The audit reason of a non-zero status of this export that is recorded but
        changes nothing (``stop_status``, ``unload_status``)."""
        return f"{self.value}_status"


class HostOutcome(enum.Enum):
    """The `outcome` label of a counted host call."""

    OK = "ok"
    DENIED = "denied"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    QUOTA = "quota"
    ERROR = "error"  # the host itself failed (the call traps with TrapKind.HOST_ERROR)


class Capability(enum.Enum):
    """Which capability a host function needs (None in the table: always allowed)."""

    LOG = "log"
    CLOCK = "clock"
    RANDOM = "random"
    ENV = "env"
    SECRETS = "secrets"
    KV = "kv"

    def granted(self, caps: Capabilities) -> bool:
        """Whether ``caps`` grants this capability at all (env/secret keys are checked per key)."""
        match self:
            case Capability.LOG:
                return caps.log
            case Capability.CLOCK:
                return caps.clock
            case Capability.RANDOM:
                return caps.random
            case Capability.ENV:
                return bool(caps.env)
            case Capability.SECRETS:
                return bool(caps.secrets)
            case Capability.KV:
                return caps.kv_quota_bytes is not None


class ExternKind(enum.Enum):
    FUNC = "func"
    MEMORY = "memory"
    TABLE = "table"
    GLOBAL = "global"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FuncSig:
    """A wasm function type with value types spelled as in WAT (`i32`, `i64`, …)."""

    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


@dataclass(frozen=True, slots=True)
class HostFunctionSpec:
    name: str
    sig: FuncSig
    capability: Capability | None


@dataclass(frozen=True, slots=True)
class ExternDecl:
    """One export (``module`` empty) or import of a module, as the validator sees it."""

    name: str
    kind: ExternKind
    sig: FuncSig | None = None
    module: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}" if self.module else self.name


@dataclass(frozen=True, slots=True)
class AbiShape:
    """What a validated module offers beyond the required exports."""

    has_handle: bool
    has_tick: bool
    imports: frozenset[str]


_I32: Final = "i32"
STATUS_SIG: Final = FuncSig((), (_I32,))
ALLOC_SIG: Final = FuncSig((_I32,), (_I32,))
HANDLE_SIG: Final = FuncSig((_I32, _I32), (_I32,))
_KEY_BUF: Final = FuncSig((_I32, _I32, _I32, _I32), (_I32,))

HOST_FUNCTIONS: Final[dict[str, HostFunctionSpec]] = {
    spec.name: spec
    for spec in (
        HostFunctionSpec("log", FuncSig((_I32, _I32, _I32), (_I32,)), Capability.LOG),
        HostFunctionSpec("env_get", _KEY_BUF, Capability.ENV),
        HostFunctionSpec("secret_get", _KEY_BUF, Capability.SECRETS),
        HostFunctionSpec("time_now_ms", FuncSig((), ("i64",)), Capability.CLOCK),
        HostFunctionSpec("random_fill", FuncSig((_I32, _I32), (_I32,)), Capability.RANDOM),
        HostFunctionSpec("kv_get", _KEY_BUF, Capability.KV),
        HostFunctionSpec("kv_set", _KEY_BUF, Capability.KV),
        HostFunctionSpec("kv_delete", FuncSig((_I32, _I32), (_I32,)), Capability.KV),
        HostFunctionSpec("output", FuncSig((_I32, _I32), (_I32,)), None),
    )
}


def _require_func(exports: dict[str, ExternDecl], name: str, sig: FuncSig) -> None:
    decl = exports.get(name)
    if decl is None:
        raise LoadError(f"ABI v1: missing export {name!r} (expected a function {sig})")
    if decl.kind is not ExternKind.FUNC:
        raise LoadError(f"ABI v1: export {name!r} is a {decl.kind.value}, expected a function")
    if decl.sig != sig:
        raise LoadError(f"ABI v1: export {name!r} has signature {decl.sig}, expected {sig}")


def _check_import(decl: ExternDecl) -> None:
    if decl.module != IMPORT_MODULE or decl.name not in HOST_FUNCTIONS:
        raise LoadError(
            f"ABI v1: unknown import {decl.qualified!r} (plugins may import only "
            f"{IMPORT_MODULE}.{{{','.join(HOST_FUNCTIONS)}}})"
        )
    expected = HOST_FUNCTIONS[decl.name].sig
    if decl.kind is not ExternKind.FUNC:
        raise LoadError(f"ABI v1: import {decl.qualified!r} is a {decl.kind.value}, not a function")
    if decl.sig != expected:
        raise LoadError(
            f"ABI v1: import {decl.qualified!r} has signature {decl.sig}, expected {expected}"
        )


def validate_abi(exports: Sequence[ExternDecl], imports: Sequence[ExternDecl]) -> AbiShape:
    """Check a module against ABI v1; raises :class:`LoadError` naming the export/import."""
    by_name = {decl.name: decl for decl in exports}
    memory = by_name.get(MEMORY_EXPORT)
    if memory is None or memory.kind is not ExternKind.MEMORY:
        raise LoadError(f"ABI v1: missing export {MEMORY_EXPORT!r} (a linear memory)")
    for export in LifecycleExport:
        _require_func(by_name, export.value, STATUS_SIG)
    has_alloc, has_handle = "alloc" in by_name, "handle" in by_name
    if has_alloc != has_handle:
        present, missing = ("alloc", "handle") if has_alloc else ("handle", "alloc")
        raise LoadError(f"ABI v1: export {present!r} without {missing!r} (both or neither)")
    if has_handle:
        _require_func(by_name, "alloc", ALLOC_SIG)
        _require_func(by_name, "handle", HANDLE_SIG)
    has_tick = "tick" in by_name
    if has_tick:
        _require_func(by_name, "tick", STATUS_SIG)
    for decl in imports:
        _check_import(decl)
    return AbiShape(
        has_handle=has_handle,
        has_tick=has_tick,
        imports=frozenset(decl.name for decl in imports),
    )
