"""A module's interface survives the compile cache's JSON as it was, and is validated anew."""

from __future__ import annotations

import json

import pytest

from forgeoned.core.abi import HOST_FUNCTIONS, FuncSig, LifecycleExport
from forgeoned.core.module_interface import ExternDecl, ExternKind, ModuleInterface
from forgeoned.errors import LoadError

STATUS = FuncSig((), ("i32",))
EXPORTS = (
    ExternDecl("memory", ExternKind.MEMORY),
    *(ExternDecl(e.value, ExternKind.FUNC, STATUS) for e in LifecycleExport),
    ExternDecl("alloc", ExternKind.FUNC, FuncSig(("i32",), ("i32",))),
    ExternDecl("handle", ExternKind.FUNC, FuncSig(("i32", "i32"), ("i32",))),
    ExternDecl("__heap_base", ExternKind.GLOBAL),
)
IMPORTS = (ExternDecl("log", ExternKind.FUNC, HOST_FUNCTIONS["log"].sig, "forgeone"),)


def test_round_trip_through_json_text() -> None:
    interface = ModuleInterface(EXPORTS, IMPORTS, memory_min_pages=3)
    again = ModuleInterface.from_json(json.loads(json.dumps(interface.to_json())))
    assert again == interface
    shape = again.validate()
    assert (shape.has_handle, shape.has_tick, shape.imports) == (True, False, frozenset({"log"}))
    assert again.func_slots() == {**{e.value: 1 for e in LifecycleExport}, "alloc": 1, "handle": 2}


def test_a_cached_interface_is_held_to_the_rules_at_load() -> None:
    without_stop = tuple(d for d in EXPORTS if d.name != "stop")
    cached = ModuleInterface(without_stop, IMPORTS).to_json()
    with pytest.raises(LoadError, match="missing export 'stop'"):
        ModuleInterface.from_json(cached).validate()


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"exports": [], "imports": []},
        {"exports": [["", "memory", "table-ish", None]], "imports": [], "memory_min_pages": 1},
        {"exports": [["", "init", "func", [[], "i32"]]], "imports": [], "memory_min_pages": 1},
        {"exports": [["", 7, "func", None]], "imports": [], "memory_min_pages": 1},
        {"exports": [["", "x"]], "imports": [], "memory_min_pages": 1},
        {"exports": [], "imports": [], "memory_min_pages": -1},
        {"exports": [], "imports": [], "memory_min_pages": True},
    ],
    ids=["null", "list", "no-pages", "kind", "results", "name", "short", "negative", "bool"],
)
def test_anything_else_is_a_value_error(raw: object) -> None:
    with pytest.raises(ValueError):
        ModuleInterface.from_json(raw)
