"""The audit anchor: what each finding is called, and that only its keeper changes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeoned.adapters.files.state_store import StateStore
from forgeoned.core.audit_anchor import Anchor, Found, Gap, GapKind, compare
from forgeoned.core.state import ActiveRecord, DaemonState

A = Anchor(15, "ab" * 32, "cd" * 32)


@pytest.mark.parametrize(
    ("found", "kind", "says"),
    [
        (Found(True, 20, "ab" * 32, "cd" * 32), None, ""),
        (Found(False, 0, None, "cd" * 32), GapKind.MISSING, "files are gone"),
        (Found(True, 3, None, "ef" * 32), GapKind.NEW_CHAIN, "entries 1..15 are missing"),
        (Found(True, 9, None, "cd" * 32), GapKind.TRUNCATED, "entries 10..15"),
        (Found(True, 40, "00" * 32, "cd" * 32), GapKind.NEW_CHAIN, "started over"),
        (Found(True, 20, "ab" * 32, "cd" * 32, written_seq=20), None, ""),
        (
            Found(True, 20, "ab" * 32, "cd" * 32, written_seq=24),
            GapKind.TRUNCATED,
            "entries 21..24 are missing (cut away",
        ),
    ],
)
def test_compare_names_what_is_missing(found: Found, kind: GapKind | None, says: str) -> None:
    gap = compare(A, found)
    assert (gap.kind if gap else None) == kind
    assert gap is None or says in gap.message


def test_the_anchor_round_trips_through_the_state_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    opened = Anchor(A.seq, A.hash, A.key, Gap(GapKind.TRUNCATED, "cut", 21))
    assert store.update_anchor(lambda current: opened) == opened
    assert StateStore(tmp_path).state.audit_anchor == opened
    assert DaemonState.from_json(DaemonState().to_json()).audit_anchor is None


def test_a_commit_from_a_stale_state_keeps_the_anchor(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    stale = store.state  # read before the checkpoint below
    store.update_anchor(lambda current: A)
    store.commit(DaemonState(active={"p": ActiveRecord("1.0.0", "ab" * 32)}, floors=stale.floors))
    assert StateStore(tmp_path).state.audit_anchor == A
    assert "p" in StateStore(tmp_path).state.active
