"""The plugin lifecycle: states from DESIGN.md section 4 and one explicit transition table.

Every state change in the daemon goes through :func:`transition`, so the table below is the
whole truth about which (state, trigger) pairs are legal; anything else is a bug in the caller
and raises :class:`IllegalTransition` instead of silently corrupting the state.
"""

from __future__ import annotations

import enum
from typing import Final

from forgeoned.errors import IllegalTransition


class State(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"
    QUARANTINED = "quarantined"


class Trigger(enum.Enum):
    START = "start"  # begin init+start of a (new or restarted) instance set
    STARTED = "started"  # init and start returned 0
    FAULT = "fault"  # a trap or limit in any export, or init/start returning non-zero
    PAUSE = "pause"
    RESUME = "resume"
    DRAIN = "drain"  # stop routing calls, wait for in-flight ones
    DRAINED = "drained"  # stop/unload done
    RESTART = "restart"  # supervisor's backoff elapsed
    QUARANTINE = "quarantine"  # restart budget exhausted
    RESET = "reset"  # operator cleared a quarantine
    ABANDON = "abandon"  # the plugin's file went away while not running


TRANSITIONS: Final[dict[tuple[State, Trigger], State]] = {
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
    (State.QUARANTINED, Trigger.START): State.STARTING,  # a new version arrived
    (State.QUARANTINED, Trigger.ABANDON): State.STOPPED,
}

# States in which a plugin accepts `handle` calls (paused ones queue them instead).
SERVING: Final[frozenset[State]] = frozenset({State.RUNNING})


def transition(state: State, trigger: Trigger) -> State:
    """The state after ``trigger`` in ``state``; raises :class:`IllegalTransition` otherwise."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(state, trigger) from None


def allowed(state: State) -> frozenset[Trigger]:
    """Triggers that are legal in ``state`` (for error messages and the control API)."""
    return frozenset(t for (s, t) in TRANSITIONS if s is state)
