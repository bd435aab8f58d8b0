"""ABI v1 load-time checks: each broken shape is a LoadError naming the export/import."""

from __future__ import annotations

import pytest

from forgeoned.core.abi import HOST_FUNCTIONS, Capability, FuncSig, LifecycleExport
from forgeoned.core.manifest import Capabilities
from forgeoned.core.module_interface import ExternDecl, ExternKind, validate_abi
from forgeoned.core.origins import parse_origin_pattern
from forgeoned.errors import LoadError

STATUS = FuncSig((), ("i32",))
MEMORY = ExternDecl("memory", ExternKind.MEMORY)


def lifecycle() -> list[ExternDecl]:
    return [ExternDecl(e.value, ExternKind.FUNC, STATUS) for e in LifecycleExport]


def handle_pair() -> list[ExternDecl]:
    return [
        ExternDecl("alloc", ExternKind.FUNC, FuncSig(("i32",), ("i32",))),
        ExternDecl("handle", ExternKind.FUNC, FuncSig(("i32", "i32"), ("i32",))),
    ]


def imp(name: str, sig: FuncSig | None = None, module: str = "forgeone") -> ExternDecl:
    return ExternDecl(name, ExternKind.FUNC, sig or HOST_FUNCTIONS[name].sig, module)


def test_minimal_module_is_valid() -> None:
    shape = validate_abi([MEMORY, *lifecycle()], [])
    assert (shape.has_handle, shape.has_tick, shape.imports) == (False, False, frozenset())


def test_full_module_with_every_import() -> None:
    tick = ExternDecl("tick", ExternKind.FUNC, STATUS)
    extra = ExternDecl("__heap_base", ExternKind.GLOBAL)  # extra exports are fine
    shape = validate_abi(
        [MEMORY, *lifecycle(), *handle_pair(), tick, extra], [imp(n) for n in HOST_FUNCTIONS]
    )
    assert shape.has_handle and shape.has_tick
    assert shape.imports == frozenset(HOST_FUNCTIONS)


@pytest.mark.parametrize("missing", [e.value for e in LifecycleExport])
def test_missing_lifecycle_export(missing: str) -> None:
    exports = [MEMORY, *(d for d in lifecycle() if d.name != missing)]
    with pytest.raises(LoadError, match=f"missing export '{missing}'"):
        validate_abi(exports, [])


@pytest.mark.parametrize("export", [e.value for e in LifecycleExport])
def test_wrong_lifecycle_signature(export: str) -> None:
    wrong = FuncSig(("i32",), ("i32",))
    exports = [MEMORY, *(ExternDecl(d.name, d.kind, wrong if d.name == export else d.sig)
                         for d in lifecycle())]  # fmt: skip
    with pytest.raises(LoadError, match=rf"export '{export}' has signature \(i32\) -> \(i32\)"):
        validate_abi(exports, [])


def test_lifecycle_export_that_is_not_a_function() -> None:
    exports = [MEMORY, *(d for d in lifecycle() if d.name != "init")]
    exports.append(ExternDecl("init", ExternKind.GLOBAL))
    with pytest.raises(LoadError, match="export 'init' is a global, expected a function"):
        validate_abi(exports, [])


def test_missing_or_wrong_memory() -> None:
    with pytest.raises(LoadError, match="missing export 'memory'"):
        validate_abi(lifecycle(), [])
    with pytest.raises(LoadError, match="missing export 'memory'"):
        validate_abi([ExternDecl("memory", ExternKind.TABLE), *lifecycle()], [])


@pytest.mark.parametrize(("present", "missing"), [("alloc", "handle"), ("handle", "alloc")])
def test_alloc_and_handle_come_together(present: str, missing: str) -> None:
    only = [d for d in handle_pair() if d.name == present]
    with pytest.raises(LoadError, match=f"export '{present}' without '{missing}'"):
        validate_abi([MEMORY, *lifecycle(), *only], [])


def test_wrong_handle_and_tick_signatures() -> None:
    bad_handle = [handle_pair()[0], ExternDecl("handle", ExternKind.FUNC, STATUS)]
    with pytest.raises(LoadError, match="export 'handle' has signature"):
        validate_abi([MEMORY, *lifecycle(), *bad_handle], [])
    bad_tick = ExternDecl("tick", ExternKind.FUNC, FuncSig((), ("i64",)))
    with pytest.raises(LoadError, match=r"export 'tick' has signature \(\) -> \(i64\)"):
        validate_abi([MEMORY, *lifecycle(), bad_tick], [])


@pytest.mark.parametrize(
    ("decl", "message"),
    [
        (imp("log", module="env"), "unknown import 'env.log'"),
        (ExternDecl("fd_write", ExternKind.FUNC, STATUS, "wasi_snapshot_preview1"),
         "unknown import 'wasi_snapshot_preview1.fd_write'"),
        (ExternDecl("exec", ExternKind.FUNC, STATUS, "forgeone"), "unknown import 'forgeone.exec'"),
        (imp("log", FuncSig(("i32", "i32"), ("i32",))),
         r"import 'forgeone.log' has signature \(i32, i32\) -> \(i32\), expected"),
        (imp("time_now_ms", STATUS), r"import 'forgeone.time_now_ms' has signature"),
        (ExternDecl("output", ExternKind.MEMORY, None, "forgeone"),
         "import 'forgeone.output' is a memory, not a function"),
    ],
)  # fmt: skip
def test_bad_imports(decl: ExternDecl, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        validate_abi([MEMORY, *lifecycle()], [imp("output"), decl])


def test_capability_granted() -> None:
    none = Capabilities()
    web = frozenset({parse_origin_pattern("https://a.example:443")})
    full = Capabilities(True, True, True, frozenset({"TZ"}), frozenset({"k"}), 0, True, web)
    for cap in Capability:
        assert not cap.granted(none)
        assert cap.granted(full)
    assert {HOST_FUNCTIONS[n].capability for n in HOST_FUNCTIONS} == {*Capability, None}
    assert HOST_FUNCTIONS["output"].capability is None
