"""The swap protocol: replace the running version of one plugin without losing a call.

One swap is a straight line of steps, each a point where the process may die (the
``fault`` hook lets tests kill it exactly there)::

    VERIFY → COMPILE → INSTANTIATE (+ init) → DRAIN old → START_NEW → COMMIT → RELEASE → STOP_OLD

Until DRAIN the old version serves as if nothing happened, so anything that fails before it
(a bad signature, a compile over its limits, an ``init`` that returns 1) leaves it untouched:
``plugin.rejected`` for an artifact that must not run, ``plugin.rolled_back`` for a version
that ran and failed. After DRAIN, new calls queue in the slot; a failure of ``start`` or of the
durable COMMIT puts the drained old version back as it was (its memory included; a paused one
is started afresh from its compiled module), then releases the queue. COMMIT (the active set
and the rollback floor, one atomic file) happens only after the new version started, so a
``kill -9`` anywhere before it restarts the old version and anywhere after it the new one:
exactly old or exactly new, never a mix and never nothing.

STOP_OLD comes last, without waiting: a :class:`~forgeoned.core.swap_ports.Retirer` runs the
old version's ``stop``/``unload`` off the loop (:mod:`forgeoned.core.retire`), so a slow
``stop`` delays nothing but itself, and the new ``start`` may run before the old ``stop``.

What a swap returns, and how its audit events and counters are written:
:mod:`forgeoned.core.swap_outcome`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import replace
from typing import Final, Generic

from forgeoned.core.desired import Candidate
from forgeoned.core.events import EventName
from forgeoned.core.lifecycle import State, Trigger
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.retire import RetireInline
from forgeoned.core.stats import DaemonStats
from forgeoned.core.swap_outcome import About, Outcome, SwapRecorder, SwapResult
from forgeoned.core.swap_ports import (
    Committer,
    CompiledT,
    Loader,
    Retirer,
    Slot,
    VerifiedT,
    Version,
)
from forgeoned.errors import ArtifactError, ForgeonedError, LoadError, PluginFault, StateError


class Step(enum.Enum):
    VERIFY = "verify"
    COMPILE = "compile"
    INSTANTIATE = "instantiate"
    DRAIN = "drain"
    START_NEW = "start_new"
    COMMIT = "commit"
    RELEASE = "release"
    STOP_OLD = "stop_old"


SERVING_OR_PAUSED: Final = frozenset({State.RUNNING, State.PAUSED})


class Swapper(Generic[VerifiedT, CompiledT]):
    """Runs swaps and removals; one at a time per slot (the daemon loop serialises them)."""

    def __init__(
        self,
        loader: Loader[VerifiedT, CompiledT],
        committer: Committer,
        audit: AuditSink,
        stats: DaemonStats,
        clock: Clock,
        drain_timeout_s: float,
        fault: Callable[[Step, Candidate], None] = lambda step, cand: None,
        retirer: Retirer | None = None,
    ) -> None:
        self.loader = loader
        self.committer = committer
        self.stats = stats
        self.clock = clock
        self.drain_timeout_s = drain_timeout_s
        self.fault = fault
        self.retirer: Retirer = retirer if retirer is not None else RetireInline(audit)
        self._record = SwapRecorder(audit, stats, clock)

    def swap(
        self, slot: Slot, cand: Candidate, quiet: bool = False, actor: str | None = None
    ) -> SwapResult:
        """Bring ``cand`` into service in ``slot``, or leave the old version serving.

        ``quiet`` skips the success event (a restart of the persisted set at daemon start is
        summarised by one ``daemon.started`` event); failures are always audited. ``actor``
        (the operator who asked, if one did) is recorded in every event of the swap.
        """
        t0 = self.clock.monotonic()
        about = About(actor)
        try:
            self.fault(Step.VERIFY, cand)
            verified = self.loader.verify(cand)
            about = replace(about, details=self.loader.details(verified))
            self.fault(Step.COMPILE, cand)
            compiled = self.loader.compile(verified)
            self.fault(Step.INSTANTIATE, cand)
            new = self.loader.instantiate(compiled)
        except (ArtifactError, LoadError) as exc:
            self.stats.rejected[exc.code] += 1
            text = str(exc)  # naming the file, as every rejection does
            text = text if text.startswith(f"{cand.filename}:") else f"{cand.filename}: {text}"
            self._record.event(EventName.PLUGIN_REJECTED, slot.name, cand, about,
                               reason=exc.code, message=text,
                               extra={"file": cand.filename})  # fmt: skip
            return self._record.finish(slot.name, Outcome.REJECTED, t0, exc)
        except PluginFault as exc:
            if slot.state in SERVING_OR_PAUSED:
                return self._rolled_back(slot, cand, exc, t0, about)
            self._enter_starting(slot, cand)
            return self._failed(slot, cand, exc, t0, about)
        return self._cut_over(slot, cand, new, t0, quiet, about)

    def _enter_starting(self, slot: Slot, cand: Candidate) -> Version | None:
        """Take the slot to STARTING; returns the healthy old version, drained (calls to it
        wait) but still installed and not stopped, so that it can serve again as it was."""
        old = slot.current
        if slot.state in SERVING_OR_PAUSED and old is not None:
            slot.trigger(Trigger.DRAIN)
            self.fault(Step.DRAIN, cand)
            slot.drain(self.drain_timeout_s)
            slot.trigger(Trigger.DRAINED)
            slot.trigger(Trigger.START)
            return old
        if old is not None:  # a failed version: nothing to drain, nothing to restore
            slot.install(None)
            self.retirer.retire(slot.name, old)
        slot.trigger(Trigger.RESTART if slot.state is State.FAILED else Trigger.START)
        return None

    def _cut_over(
        self, slot: Slot, cand: Candidate, new: Version, t0: float, quiet: bool, about: About
    ) -> SwapResult:
        previous = slot.current  # healthy, failed or quarantined: what this replaces
        # The active version coming up again (a supervisor restart, restart, reset, a daemon
        # start): its caller audits it (plugin.restarted, plugin.reset, daemon.started).
        restart = self.committer.active_sha256(slot.name) == new.sha256
        was_paused = slot.state is State.PAUSED
        old = self._enter_starting(slot, cand)
        try:
            self.fault(Step.START_NEW, cand)
            new.start()
            self.fault(Step.COMMIT, cand)
            self.committer.commit(slot.name, new)
        except (PluginFault, StateError) as exc:
            self.retirer.retire(slot.name, new)
            if old is None:
                return self._failed(slot, cand, exc, t0, about)
            return self._restore(slot, cand, old, was_paused, exc, t0, about)
        slot.install(new)
        slot.trigger(Trigger.STARTED)
        self.fault(Step.RELEASE, cand)
        slot.release()
        if restart:
            outcome = Outcome.RESTARTED
        else:
            outcome = Outcome.INSTALLED if previous is None else Outcome.UPGRADED
        if restart or quiet:
            pass
        elif previous is None:
            self._record.event(EventName.PLUGIN_INSTALLED, slot.name, new, about)
        else:
            self._record.upgraded(slot.name, previous, new, about)
        if old is not None:
            self.fault(Step.STOP_OLD, cand)
            self.retirer.retire(slot.name, old)
        return self._record.finish(slot.name, outcome, t0)

    def _failed(
        self, slot: Slot, cand: Candidate, exc: ForgeonedError, t0: float, about: About
    ) -> SwapResult:
        """No healthy version to fall back to: STARTING → FAILED (the supervisor takes over)."""
        slot.trigger(Trigger.FAULT, exc.code)
        slot.release()
        self._record.event(EventName.PLUGIN_FAILED, slot.name, cand, about, reason=exc.code,
                           message=str(exc))  # fmt: skip
        return self._record.finish(slot.name, Outcome.FAILED, t0, exc)

    def _restore(
        self,
        slot: Slot,
        cand: Candidate,
        old: Version,
        was_paused: bool,
        exc: ForgeonedError,
        t0: float,
        about: About,
    ) -> SwapResult:
        """The new version failed after the old one was drained: the old one serves again as
        it was (never stopped), or, if it was paused, started afresh from its module."""
        if not was_paused:
            slot.trigger(Trigger.STARTED)
            slot.release()
            return self._rolled_back(slot, cand, exc, t0, about)
        slot.install(None)
        self.retirer.retire(slot.name, old)
        revived: Version | None = None
        try:
            revived = old.revive()
            revived.start()
        except ForgeonedError as again:
            if revived is not None:
                self.retirer.retire(slot.name, revived)
            slot.trigger(Trigger.FAULT, again.code)
            slot.release()
            self._record.event(
                EventName.PLUGIN_FAILED,
                slot.name,
                old,
                About(about.actor),  # the event is about the old version: not the new signers
                reason=again.code,
                message=f"{cand.version} failed ({exc}); {old.version} could not restart: {again}",
            )
            return self._record.finish(slot.name, Outcome.FAILED, t0, exc)
        slot.install(revived)
        slot.trigger(Trigger.STARTED)
        slot.release()
        return self._rolled_back(slot, cand, exc, t0, about)

    def _rolled_back(
        self, slot: Slot, cand: Candidate, exc: ForgeonedError, t0: float, about: About
    ) -> SwapResult:
        """The event names the version that failed (with its signers in ``details``) and,
        under ``details["serving"]``, the version that keeps serving."""
        current = slot.current
        keeps = current.version if current is not None else "the old version"
        serving = {"version": current.version, "sha256": current.sha256} if current else {}
        self._record.event(
            EventName.PLUGIN_ROLLED_BACK,
            slot.name,
            cand,
            about,
            reason=exc.code,
            message=f"{cand.version} failed ({exc}); {keeps} keeps serving",
            extra={"serving": serving} if serving else None,
        )
        return self._record.finish(slot.name, Outcome.ROLLED_BACK, t0, exc)

    def remove(self, slot: Slot, actor: str | None = None) -> SwapResult:
        """The plugin's file went away: drain it, forget it durably, then stop and unload it
        (off the loop, like the old version of a swap). If the state cannot be written the
        version stays installed, drained, and the next attempt takes it from there."""
        t0 = self.clock.monotonic()
        old = slot.current
        if slot.state in SERVING_OR_PAUSED and old is not None:
            slot.trigger(Trigger.DRAIN)
            slot.drain(self.drain_timeout_s)
            slot.trigger(Trigger.DRAINED)
        elif slot.state is not State.STOPPED:
            slot.trigger(Trigger.ABANDON)
        self.committer.commit(slot.name, None)
        slot.install(None)
        slot.release()
        self._record.event(EventName.PLUGIN_REMOVED, slot.name, old, About(actor))
        if old is not None:
            self.retirer.retire(slot.name, old)
        return self._record.finish(slot.name, Outcome.REMOVED, t0)
