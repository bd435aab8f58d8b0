"""Rollback protection: the pure rule, and the floors persisted by the real StateStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeoned.adapters.files.state_store import StateStore
from forgeoned.core.rollback import Verdict, check_rollback, next_floor
from forgeoned.core.state import DowngradeOverride, Floor
from forgeoned.errors import RollbackError

A, B = "a" * 64, "b" * 64
FLOORS = {"hello": Floor("1.2.0", A)}


@pytest.mark.parametrize(
    ("version", "sha", "verdict"),
    [
        ("1.0.0", A, Verdict.FIRST),  # other name: no floor
        ("1.2.1", B, Verdict.UPGRADE),
        ("2.0.0-rc.1", B, Verdict.UPGRADE),
        ("1.2.0", A, Verdict.SAME),
        ("1.2.0+build.7", A, Verdict.SAME),  # build metadata has no precedence
    ],
)
def test_allowed(version: str, sha: str, verdict: Verdict) -> None:
    name = "other" if verdict is Verdict.FIRST else "hello"
    assert check_rollback(name, version, sha, FLOORS, {}) is verdict


def test_downgrade_is_refused() -> None:
    with pytest.raises(RollbackError, match=r"hello 1\.1\.9 is a downgrade: 1\.2\.0") as info:
        check_rollback("hello", "1.1.9", A, FLOORS, {})
    assert info.value.code == "downgrade"


def test_prerelease_of_the_floor_is_a_downgrade() -> None:
    with pytest.raises(RollbackError, match="downgrade"):
        check_rollback("hello", "1.2.0-rc.1", B, FLOORS, {})


def test_same_version_other_bytes_is_refused() -> None:
    with pytest.raises(RollbackError, match="same version as already activated but different"):
        check_rollback("hello", "1.2.0", B, FLOORS, {})


def test_override_allows_exactly_that_version() -> None:
    overrides = {"hello": DowngradeOverride("1.1.0", actor="uid=0")}
    assert check_rollback("hello", "1.1.0", B, FLOORS, overrides) is Verdict.OVERRIDDEN
    with pytest.raises(RollbackError):
        check_rollback("hello", "1.0.0", B, FLOORS, overrides)
    pinned = {"hello": DowngradeOverride("1.1.0", actor="uid=0", sha256=A)}
    assert check_rollback("hello", "1.1.0", A, FLOORS, pinned) is Verdict.OVERRIDDEN
    with pytest.raises(RollbackError):
        check_rollback("hello", "1.1.0", B, FLOORS, pinned)


def test_override_for_same_version_other_bytes() -> None:
    overrides = {"hello": DowngradeOverride("1.2.0", actor="uid=0", sha256=B)}
    assert check_rollback("hello", "1.2.0", B, FLOORS, overrides) is Verdict.OVERRIDDEN


def test_next_floor_keeps_the_highest() -> None:
    assert next_floor(None, Floor("1.0.0", A)) == Floor("1.0.0", A)
    assert next_floor(Floor("1.0.0", A), Floor("1.1.0", B)) == Floor("1.1.0", B)
    assert next_floor(Floor("1.1.0", A), Floor("1.0.0", B)) == Floor("1.1.0", A)
    assert next_floor(Floor("1.1.0", A), Floor("1.1.0", B)) == Floor("1.1.0", B)


def activate(store: StateStore, name: str, version: str, sha: str) -> None:
    """What the daemon does: check, then raise the floor durably."""
    state = store.state
    check_rollback(name, version, sha, state.floors, state.overrides)
    floor = next_floor(state.floors.get(name), Floor(version, sha))
    store.update(floors={**state.floors, name: floor})


def test_floors_survive_a_restart(tmp_path: Path) -> None:
    activate(StateStore(tmp_path), "hello", "1.2.0", A)
    restarted = StateStore(tmp_path)
    with pytest.raises(RollbackError, match="downgrade"):
        activate(restarted, "hello", "1.0.0", B)
    with pytest.raises(RollbackError, match="different bytes"):
        activate(restarted, "hello", "1.2.0", B)
    assert StateStore(tmp_path).state.floors == {"hello": Floor("1.2.0", A)}
    activate(restarted, "hello", "1.2.0", A)  # the same artifact again is fine
    restarted.update(overrides={"hello": DowngradeOverride("1.0.0", actor="uid=0")})
    activate(StateStore(tmp_path), "hello", "1.0.0", B)
    assert StateStore(tmp_path).state.floors == {"hello": Floor("1.2.0", A)}
