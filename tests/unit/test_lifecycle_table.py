"""Every (state, trigger) pair of the lifecycle table: legal ones land where the table says,
every other pair raises IllegalTransition and names both."""

from __future__ import annotations

import itertools

import pytest

from forgeoned.core.lifecycle import (
    SERVING,
    TRANSITIONS,
    State,
    Trigger,
    allowed,
    transition,
)
from forgeoned.errors import ConflictError, IllegalTransition

# The table written out independently of lifecycle.py, so a silent edit there fails here.
EXPECTED = {
    (State.STOPPED, Trigger.START): State.STARTING,
    (State.STARTING, Trigger.STARTED): State.RUNNING,
    (State.STARTING, Trigger.FAULT): State.FAILED,
    (State.RUNNING, Trigger.PAUSE): State.PAUSED,
    (State.RUNNING, Trigger.DRAIN): State.DRAINING,
    (State.RUNNING, Trigger.FAULT): State.FAILED,
    (State.PAUSED, Trigger.RESUME): State.RUNNING,
    (State.PAUSED, Trigger.DRAIN): State.DRAINING,
    (State.PAUSED, Trigger.FAULT): State.FAILED,
    (State.DRAINING, Trigger.DRAINED): State.STOPPED,
    (State.DRAINING, Trigger.FAULT): State.FAILED,
    (State.FAILED, Trigger.RESTART): State.STARTING,
    (State.FAILED, Trigger.QUARANTINE): State.QUARANTINED,
    (State.FAILED, Trigger.ABANDON): State.STOPPED,
    (State.QUARANTINED, Trigger.RESET): State.STOPPED,
    (State.QUARANTINED, Trigger.START): State.STARTING,
    (State.QUARANTINED, Trigger.ABANDON): State.STOPPED,
}
ALL_PAIRS = list(itertools.product(State, Trigger))


def test_table_is_exactly_the_expected_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("state", "trigger"), ALL_PAIRS, ids=lambda x: x.value)
def test_every_pair(state: State, trigger: Trigger) -> None:
    if (state, trigger) in EXPECTED:
        assert transition(state, trigger) is EXPECTED[(state, trigger)]
        assert trigger in allowed(state)
        return
    with pytest.raises(IllegalTransition) as info:
        transition(state, trigger)
    assert isinstance(info.value, ConflictError)
    assert info.value.state is state and info.value.trigger is trigger
    assert str(info.value) == f"cannot {trigger.value} a plugin that is {state.value}"
    assert trigger not in allowed(state)


def test_every_state_has_a_way_out_and_only_running_serves() -> None:
    for state in State:
        assert allowed(state), f"{state} is a dead end"
    assert frozenset({State.RUNNING}) == SERVING


def test_design_states_are_the_status_strings() -> None:
    assert {s.value for s in State} == {
        "starting",
        "running",
        "paused",
        "draining",
        "stopped",
        "failed",
        "quarantined",
    }
