"""The ABI v1 lifecycle exports as one WAT fragment, for every test that writes a plugin as
inline WAT (unit, integration and system tests alike). The export names come from
:class:`forgeoned.core.abi.LifecycleExport`, so the tests follow the ABI if it changes."""

from __future__ import annotations

from collections.abc import Mapping

from forgeoned.core.abi import LifecycleExport

ALLOC = '(func (export "alloc") (param i32) (result i32) i32.const 1024)'
"""An ``alloc`` that always answers 1024 (enough for the tests' small inputs)."""


def lifecycle_exports(bodies: Mapping[str, str] | None = None, omit: tuple[str, ...] = ()) -> str:
    """``(func (export "init") (result i32) i32.const 0)`` and so on, one line per lifecycle
    export in ABI order; ``bodies`` replaces the body of some (it must leave one i32, e.g.
    ``{"unload": "i32.const 7"}``), ``omit`` leaves some out (for the ABI checks)."""
    bodies = bodies or {}
    unknown = set(bodies) - {e.value for e in LifecycleExport}
    assert not unknown, f"not lifecycle exports: {sorted(unknown)}"
    return "\n".join(
        f'(func (export "{e.value}") (result i32) {bodies.get(e.value, "i32.const 0")})'
        for e in LifecycleExport
        if e.value not in omit
    )
