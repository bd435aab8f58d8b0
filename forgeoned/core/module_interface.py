"""What a compiled module declares, and the load-time checks of it against ABI v1.

The runtime adapter turns a compiled module's export/import types into a
:class:`ModuleInterface` (its :class:`ExternDecl` values) and asks :func:`validate_abi` whether
the module fits the tables of :mod:`forgeoned.core.abi`, so every rule about what a plugin must
look like is testable without wasmtime. The interface round-trips through JSON so that the
compile cache can keep it beside the native code: a warm load then validates the cached
declarations instead of asking wasmtime for every export's type again (≈0.4 ms of Python per
module).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgeoned.core.abi import (
    ALLOC_SIG,
    HANDLE_SIG,
    HOST_FUNCTIONS,
    IMPORT_MODULE,
    MEMORY_EXPORT,
    STATUS_SIG,
    FuncSig,
    LifecycleExport,
)
from forgeoned.errors import LoadError


class ExternKind(enum.Enum):
    FUNC = "func"
    MEMORY = "memory"
    TABLE = "table"
    GLOBAL = "global"
    OTHER = "other"


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


def require_functions(exports: Sequence[ExternDecl], functions: Sequence[str]) -> None:
    """The manifest's named functions are exported as ``(i32, i32) -> i32``, beside ``alloc``
    (the host copies each call's input there); raises :class:`LoadError` naming the first
    that is not."""
    if not functions:
        return
    by_name = {decl.name: decl for decl in exports}
    for name in functions:
        if name not in by_name:
            raise LoadError(f"ABI v1: manifest function {name!r} is not exported")
        _require_func(by_name, name, HANDLE_SIG)
    if "alloc" not in by_name:
        raise LoadError("ABI v1: named functions need an 'alloc' export for their input")
    _require_func(by_name, "alloc", ALLOC_SIG)


@dataclass(frozen=True, slots=True)
class ModuleInterface:
    """What a compiled module declares: its exports and imports (with function types) and the
    minimum size of its memory, in pages. Validated with :meth:`validate` at every load, so a
    cached interface is held to the rules of the daemon that loads it, not of the one that
    compiled it."""

    exports: tuple[ExternDecl, ...]
    imports: tuple[ExternDecl, ...]
    memory_min_pages: int = 0

    def validate(self) -> AbiShape:
        return validate_abi(self.exports, self.imports)

    def func_slots(self) -> dict[str, int]:
        """Raw call slots per exported function: max(params, results), at least what a call
        needs for its arguments and its results."""
        return {
            d.name: max(len(d.sig.params), len(d.sig.results))
            for d in self.exports
            if d.kind is ExternKind.FUNC and d.sig is not None
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "exports": [_decl_json(d) for d in self.exports],
            "imports": [_decl_json(d) for d in self.imports],
            "memory_min_pages": self.memory_min_pages,
        }

    @classmethod
    def from_json(cls, raw: Any) -> ModuleInterface:
        """The inverse of :meth:`to_json`; ValueError on anything else."""
        try:
            pages = raw["memory_min_pages"]
            exports = tuple(_decl_from(d) for d in raw["exports"])
            imports = tuple(_decl_from(d) for d in raw["imports"])
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"not a module interface: {exc!r}") from None
        if type(pages) is not int or pages < 0:
            raise ValueError(f"not a page count: {pages!r}")
        return cls(exports, imports, pages)


def _decl_json(d: ExternDecl) -> list[Any]:
    sig = [list(d.sig.params), list(d.sig.results)] if d.sig is not None else None
    return [d.module, d.name, d.kind.value, sig]


def _strings(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError(f"not a list of value types: {raw!r}")
    return tuple(raw)


def _decl_from(raw: Any) -> ExternDecl:
    if not isinstance(raw, list) or len(raw) != 4 or not all(isinstance(x, str) for x in raw[:2]):
        raise ValueError(f"not a declaration: {raw!r}")
    module, name, kind, sig = raw
    if sig is not None:
        if not isinstance(sig, list) or len(sig) != 2:
            raise ValueError(f"not a function type: {sig!r}")
        sig = FuncSig(_strings(sig[0]), _strings(sig[1]))
    return ExternDecl(name, ExternKind(kind), sig, module)
