"""How a swap ends, and what it leaves behind: the audit events and the counters.

A swap (or a removal, :mod:`forgeoned.core.swapper`) returns a :class:`SwapResult`: its
:class:`Outcome` and, unless it succeeded, the error that decided it. On its way it records
audit events through a :class:`SwapRecorder`, each carrying the :class:`About` of the swap
(who asked, the candidate's signature facts), and when it ends the recorder counts it, by
plugin and outcome, and observes how long it took.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import semver

from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.stats import DaemonStats
from forgeoned.core.swap_ports import Version
from forgeoned.errors import ForgeonedError


class Outcome(enum.Enum):
    INSTALLED = "installed"
    UPGRADED = "upgraded"
    REMOVED = "removed"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    RESTARTED = "restarted"  # the active version itself came up again (not an upgrade)


@dataclass(frozen=True, slots=True)
class SwapResult:
    outcome: Outcome
    error: ForgeonedError | None = None


@dataclass(frozen=True, slots=True)
class About:
    """What every audit event of one swap carries: who asked for it (an operator; None when
    plugins.d or the supervisor did) and, once verified, the candidate's signature facts."""

    actor: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class SwapRecorder:
    """Records the audit events of swaps and counts how each ended."""

    def __init__(self, audit: AuditSink, stats: DaemonStats, clock: Clock) -> None:
        self.audit = audit
        self.stats = stats
        self.clock = clock

    def event(
        self,
        event: EventName,
        name: str,
        cand: Candidate | Version | None,
        about: About,
        reason: str | None = None,
        message: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        version = cand.version if cand is not None else None
        sha = cand.sha256 if cand is not None else None
        self.audit.record(
            AuditEvent(event, plugin=name, version=version, sha256=sha, actor=about.actor,
                       reason=reason, message=message, details={**about.details, **(extra or {})})
        )  # fmt: skip

    def upgraded(self, name: str, previous: Version, new: Version, about: About) -> None:
        """``plugin.upgraded``, saying which way it went when it was a downgrade."""
        message = f"{previous.version} -> {new.version}"
        down = semver.Version.parse(new.version) < semver.Version.parse(previous.version)
        if down:  # only ever an admin's allow-downgrade: the trail says which way it went
            message += " (downgrade, allowed by an admin)"
        self.event(EventName.PLUGIN_UPGRADED, name, new, about, message=message,
                   reason="downgrade" if down else None)  # fmt: skip

    def finish(
        self, name: str, outcome: Outcome, t0: float, err: ForgeonedError | None = None
    ) -> SwapResult:
        """Count the swap of ``name`` that began at ``t0`` (monotonic) and ended in ``outcome``."""
        self.stats.swaps[(name, outcome.value)] += 1
        self.stats.swap_duration.observe(self.clock.monotonic() - t0)
        return SwapResult(outcome, err)
