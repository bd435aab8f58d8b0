"""forgeoned/core is pure: it imports no adapter and no third-party runtime library."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "forgeoned" / "core"
FORBIDDEN = ("forgeoned.adapters", "wasmtime", "watchdog", "prometheus_client", "systemd", "nacl")
# Daemon-level modules that wire adapters: core must not reach up to them either.
WIRING = (
    "forgeoned.daemon.main",
    "forgeoned.daemon.wiring",
    "forgeoned.adapters.wasm.loader",
    "forgeoned.daemon.facade",
)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_core_imports_no_adapter_nor_runtime_library() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in sorted(CORE.glob("*.py"))
        for name in imports_of(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN + WIRING)
    }
    assert offenders == set()


def test_the_check_sees_core_modules() -> None:
    names = {p.name for p in CORE.glob("*.py")}
    assert {"swapper.py", "supervisor.py", "desired.py", "lifecycle.py"} <= names
    assert "forgeoned.core.events" in imports_of(CORE / "swapper.py")
