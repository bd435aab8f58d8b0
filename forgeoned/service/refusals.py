"""The candidates that stay out: each (name, sha256) rejected, rolled back or failed.

The rule for what runs (docs/operations.md, "What runs"): the supervisor, ``restart``,
``reset``, a reload and a daemon restart bring back the *active* version, never a candidate
that was refused. A refusal is kept here and in the state file (so that a daemon restart keeps
it out as well) until other bytes replace the candidate's file, or an admin acts: ``retry``
(all of a name), ``install`` of those very bytes, ``allow-downgrade`` of the name. Removing
the plugin forgets its refusals; at most :data:`~forgeoned.core.state.MAX_REFUSED_PER_NAME`
per name are kept (the oldest go first).

Memory is the truth for this process; the state file is written through the active set, and
a write that fails is logged, not raised: the candidate is still kept out until the daemon
restarts (which is what keeping it out in memory only used to give).
"""

from __future__ import annotations

import logging
import threading

from forgeoned.core.desired import Candidate
from forgeoned.core.ports import Clock
from forgeoned.core.state import MAX_REFUSED_PER_NAME, Refusal, RefusalKind
from forgeoned.core.swap_outcome import Outcome
from forgeoned.errors import ForgeonedError, StateError
from forgeoned.service.active_set import ActiveSet

log = logging.getLogger("forgeoned")


class Refusals:
    def __init__(self, active: ActiveSet, clock: Clock) -> None:
        self._active = active
        self._clock = clock
        self._lock = threading.Lock()  # the loop writes; control threads read (status)
        self._by_name: dict[str, tuple[Refusal, ...]] = dict(active.current.refused)

    # --- reads (any thread) -----------------------------------------------------------------

    def __contains__(self, key: tuple[str, str]) -> bool:
        name, sha256 = key
        return any(r.sha256 == sha256 for r in self._by_name.get(name, ()))

    def of(self, name: str) -> tuple[Refusal, ...]:
        """The refusals of ``name``, oldest first."""
        return self._by_name.get(name, ())

    def get(self, name: str, sha256: str) -> Refusal | None:
        return next((r for r in self._by_name.get(name, ()) if r.sha256 == sha256), None)

    # --- changes (the daemon loop) ----------------------------------------------------------

    def judge(
        self, cand: Candidate, outcome: Outcome, error: ForgeonedError, active: str | None
    ) -> str:
        """A swap of ``cand`` failed with ``error`` (``active``: the hash of the active
        version): keep the candidate out if it is one (the same bytes would fail again).
        A failure of the active version itself (a restart) or of a first version (nothing is
        active yet) is the supervisor's business instead. Returns the plugin's last error."""
        if outcome is Outcome.REJECTED:
            kind, text = RefusalKind.REJECTED, f"{cand.version} rejected: {error}"
        elif outcome is Outcome.ROLLED_BACK:
            kind, text = RefusalKind.ROLLED_BACK, f"{cand.version} rolled back: {error}"
        elif outcome is Outcome.FAILED and active not in (None, cand.sha256):
            kind, text = RefusalKind.FAILED, f"{cand.version} failed: {error}"
        else:
            return str(error)
        self.record(cand, kind, error)
        return text

    def record(
        self, cand: Candidate, kind: RefusalKind, error: ForgeonedError, message: str = ""
    ) -> Refusal:
        refusal = Refusal(
            version=cand.version,
            sha256=cand.sha256,
            kind=kind,
            reason=error.code,
            message=message or str(error),
            at=self._clock.wall(),
            file="" if cand.filename.startswith("@") else cand.filename,
        )
        kept = [r for r in self.of(cand.name) if r.sha256 != cand.sha256] + [refusal]
        self._set(cand.name, tuple(kept[-MAX_REFUSED_PER_NAME:]))
        return refusal

    def forget(self, name: str, sha256: str | None = None) -> tuple[Refusal, ...]:
        """Let ``sha256`` of ``name`` (None: every candidate of it) be tried again; returns
        the refusals forgotten."""
        before = self.of(name)
        gone = tuple(r for r in before if sha256 is None or r.sha256 == sha256)
        if gone:
            self._set(name, tuple(r for r in before if r not in gone))
        return gone

    def _set(self, name: str, refused: tuple[Refusal, ...]) -> None:
        with self._lock:
            by_name = dict(self._by_name)
            if refused:
                by_name[name] = refused
            else:
                by_name.pop(name, None)
            self._by_name = by_name  # readers see the old or the new map, never a mix
        try:
            self._active.set_refused(name, refused)
        except StateError as exc:
            log.error("cannot record the refused versions of %s: %s", name, exc)  # noqa: TRY400
