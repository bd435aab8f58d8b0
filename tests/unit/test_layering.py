"""Each layer imports only the layers below it: an allowlist per layer, over every module.

errors ← core ← service ← adapters ← daemon ← cli. ``errors`` imports the standard library
only; ``core`` adds itself and ``errors`` (and pure value libraries: no I/O, no native
runtime); ``service`` imports ``core`` and ``errors``, reaching the world through ports;
``adapters`` add third-party libraries and each other; ``daemon`` composes everything below;
``cli`` may import anything. Imports under ``if TYPE_CHECKING:`` count like any other.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGE: Final = "forgeoned"
LAYERS: Final = ("errors", "core", "service", "adapters", "daemon", "cli")
# Pure value libraries core may use: no I/O, no threads, no native runtime.
PURE_LIBRARIES: Final = frozenset({"semver"})


@dataclass(frozen=True, slots=True)
class Rule:
    layers: frozenset[str]  # forgeoned layers this one may import (itself included)
    third_party: frozenset[str] | None  # None: any third-party library


def _below(layer: str) -> frozenset[str]:
    return frozenset(LAYERS[: LAYERS.index(layer) + 1])


# "" is the package's own __init__ (a docstring and ``__version__``): anyone may read it.
RULES: Final = {
    "": Rule(frozenset({""}), frozenset()),
    "errors": Rule(frozenset({"", "errors"}), frozenset()),
    "core": Rule(frozenset({"", "errors", "core"}), PURE_LIBRARIES),
    "service": Rule(frozenset({"", "errors", "core", "service"}), frozenset()),
    "adapters": Rule(frozenset({"", "errors", "core", "adapters"}), None),
    "daemon": Rule(_below("daemon") | {""}, None),
    "cli": Rule(_below("cli") | {""}, None),
}


def layer_of(module: str, package: str) -> str | None:
    """``forgeoned.core.swapper`` → ``core``; ``forgeoned.__version__`` → "" (the package's
    __init__); None for a module outside the package."""
    parts = module.split(".")
    if parts[0] != package:
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else ""


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against ``module``."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
                found.add(target)
                if not node.module:  # from . import x: x may be a module
                    found.update(f"{target}.{alias.name}" for alias in node.names)
            elif node.module and "." not in node.module:  # from forgeoned import errors
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif node.module:
                found.add(node.module)
    return found


def violations(root: Path, package: str) -> list[str]:
    """``path: imported (reason)`` for every import a layer may not make."""
    out: list[str] = []
    for path in sorted((root / package).rglob("*.py")):
        module = module_name(path, root)
        layer = layer_of(module, package)
        assert layer is not None
        rule = RULES[layer]
        for name in sorted(imports_of(path, module)):
            top = name.split(".")[0]
            target = layer_of(name, package)
            if target is not None:
                if target not in rule.layers:
                    out.append(
                        f"{path.relative_to(root)}: {name} ({layer} may not import {target})"
                    )
            elif top in sys.stdlib_module_names:
                continue
            elif rule.third_party is not None and top not in rule.third_party:
                out.append(f"{path.relative_to(root)}: {name} (third-party, not in {layer})")
    return out


def test_every_layer_imports_only_what_its_allowlist_names() -> None:
    assert violations(ROOT, PACKAGE) == []


def test_the_check_sees_every_module_of_every_layer() -> None:
    modules = {module_name(p, ROOT) for p in (ROOT / PACKAGE).rglob("*.py")}
    layers = {layer_of(m, PACKAGE) for m in modules}
    assert layers == set(LAYERS) | {""}
    assert {"forgeoned.core.swapper", "forgeoned.service.active_set",
            "forgeoned.adapters.wasm.loader", "forgeoned.daemon.wiring"} <= modules  # fmt: skip
    swapper = ROOT / PACKAGE / "core" / "swapper.py"
    assert "forgeoned.core.swap_ports" in imports_of(swapper, "forgeoned.core.swapper")


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("where", "text", "expected"),
    [
        ("pkg/core/bad.py", "from pkg.service.x import y\n", "core may not import service"),
        ("pkg/core/bad.py", "import wasmtime\n", "third-party, not in core"),
        (
            "pkg/service/bad.py",
            "from pkg.adapters.files import atomic\n",
            "may not import adapters",
        ),
        ("pkg/service/bad.py", "from ..adapters import files\n", "may not import adapters"),
        ("pkg/adapters/bad.py", "from pkg.daemon import wiring\n", "may not import daemon"),
        ("pkg/errors.py", "from pkg.core import clock\n", "errors may not import core"),
        ("pkg/daemon/bad.py", "if TYPE_CHECKING:\n    from pkg.cli import x\n", "import cli"),
    ],
)
def test_the_check_reports_an_upward_import(
    tmp_path: Path, where: str, text: str, expected: str
) -> None:
    base = {
        "pkg/__init__.py": "",
        "pkg/errors.py": "import enum\n",
        "pkg/core/__init__.py": "",
        "pkg/core/ok.py": "import semver\nfrom pkg.errors import X\nfrom . import ok\n",
        "pkg/service/__init__.py": "",
        "pkg/service/ok.py": "from pkg.core.ok import Y\nfrom ..core import ok\n",
        "pkg/adapters/__init__.py": "",
        "pkg/adapters/ok.py": "import wasmtime\nfrom pkg.core.ok import Y\n",
        "pkg/daemon/__init__.py": "",
        "pkg/daemon/ok.py": "from pkg.service.ok import Z\nfrom pkg.adapters.ok import W\n",
        "pkg/cli/__init__.py": "",
        "pkg/cli/ok.py": "from pkg.daemon.ok import V\n",
    }
    _package(tmp_path, base)
    assert violations(tmp_path, "pkg") == []  # the well-layered package passes
    _package(tmp_path, {where: text})
    found = violations(tmp_path, "pkg")
    assert len(found) == 1 and found[0].startswith(where)
    assert expected in found[0]
