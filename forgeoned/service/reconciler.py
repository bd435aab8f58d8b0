"""Turning the desired set (plugins.d) into running plugins, and keeping them running.

Everything here runs on the daemon's loop thread, one step at a time, so swaps of one plugin
never overlap and the restart budgets need no lock. Calls arrive on other threads and only
touch the :class:`PluginHost` objects.

What runs (docs/operations.md) is decided by :mod:`forgeoned.service.what_runs`: of each
name, the highest version in plugins.d that was not refused is tried; restarts, reloads and
daemon restarts bring back the *active* version. Each swap, and what follows from its
outcome, is :mod:`forgeoned.service.swaps`' business. Operator actions are built on the
methods here (:mod:`forgeoned.service.operations`); ``actor`` is who asked, put in their
events.

While the audit log cannot be written (``gate``), nothing changes on the daemon's own
initiative: plugins.d is reconciled and failed plugins are restarted once it can be again. A
record of something that happened anyway (a fault, a quarantine) is counted as lost by the
audit trail and does not stop the supervision.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State, Trigger
from forgeoned.core.ports import AuditGate, AuditSink, Clock
from forgeoned.core.stats import DaemonStats
from forgeoned.core.swap_outcome import SwapResult
from forgeoned.core.swap_ports import Version
from forgeoned.core.swapper import Swapper
from forgeoned.errors import AuditError, NotFoundError, PluginFault
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.refusals import Refusals
from forgeoned.service.rejections import RejectionReport
from forgeoned.service.restarts import RestartSchedule
from forgeoned.service.swaps import Swaps
from forgeoned.service.what_runs import WhatRuns

log = logging.getLogger(__name__)
Post = Callable[[Callable[[], None]], None]  # run this on the daemon loop, later
AUDIT_RETRY_S = 5.0  # a restart whose record could not be written is tried again this much later


@dataclass
class Reconciler:
    swapper: Swapper[Any, Any]  # the loader's intermediate types are the swapper's business
    directory: PluginDirectory
    active: ActiveSet
    audit: AuditSink
    stats: DaemonStats
    clock: Clock
    restarts: RestartSchedule
    plugins: PluginTable
    rejections: RejectionReport
    post: Post
    refusals: Refusals
    pending: set[str] = field(default_factory=set)  # plugin names to reconcile (deferred)
    retry: set[str] = field(default_factory=set)  # file names to read again (changed mid-read)
    prefetch: Callable[[list[Candidate]], None] | None = None
    gate: AuditGate | None = None  # None: the audit log is taken to be writable
    swaps: Swaps = field(init=False)
    what_runs: WhatRuns = field(init=False)

    def __post_init__(self) -> None:
        self.what_runs = WhatRuns(self.directory, self.active, self.refusals, self.plugins)
        self.swaps = Swaps(
            self.swapper, self.plugins, self.active, self.refusals, self.restarts, self.clock
        )

    @property
    def drain_timeout_s(self) -> float:
        """How long a drain waits for in-flight calls (a swap's, a removal's, a pause's)."""
        return self.swapper.drain_timeout_s

    # --- hosts ------------------------------------------------------------------------------

    def _host_for(self, name: str) -> PluginHost:
        return self.plugins.ensure(name, self._fault_seen)

    def _fault_seen(self, host: PluginHost, version: Version, exc: PluginFault) -> None:
        """A call's thread saw a fault: the supervisor handles it on the loop."""
        self.post(lambda: self.fault(host, version, exc))

    # --- startup ----------------------------------------------------------------------------

    def start_persisted(self) -> int:
        """Start the active set recorded in the state (a quarantined plugin stays so, also
        one that never ran: its candidate is the one plugins.d selects); returns how many run."""
        st = self.active.current
        running = 0
        for cand in self.what_runs.at_start():
            host = self._host_for(cand.name)
            if cand.name in st.quarantined:
                self.swaps.targets[cand.name] = cand
                for trig in (Trigger.START, Trigger.FAULT, Trigger.QUARANTINE):
                    host.trigger(trig, "quarantined before restart")
                if (cause := st.causes.get(cand.name)) is not None:
                    host.record_error(cause.reason, cause.last_error or cause.message, cause.at)
                continue
            self.swaps.bring_up(host, cand, quiet=True)
            running += host.state is State.RUNNING
        return running

    # --- plugins.d --------------------------------------------------------------------------

    def files_changed(
        self, filenames: Iterable[str], defer: bool = False, actor: str | None = None
    ) -> None:
        """Re-read changed files and reconcile the plugins they name (now, or at the next
        :meth:`reconcile_pending` when ``defer``: a burst of files becomes one swap per
        plugin instead of one per file). Files that changed while being read go to
        :attr:`retry`."""
        names = set(filenames)
        before = [self.directory.entries.get(n) for n in names]
        rejections, retry = self.directory.refresh(names)
        self.retry |= retry
        after = [self.directory.entries.get(n) for n in names]
        touched = {e.candidate.name for e in before + after if e and e.candidate}
        self.rejections.files(rejections)
        if defer:
            self.pending |= touched
        else:
            self.reconcile(touched, actor)

    def take_retry(self) -> set[str]:
        retry, self.retry = self.retry, set()
        return retry

    def reconcile_pending(self) -> None:
        pending, self.pending = self.pending, set()
        if pending:
            self.reconcile(pending)

    def rescan(self, reconcile: bool = True) -> None:
        """Re-read plugins.d fully; ``reconcile=False`` only refreshes the index (the daemon
        start restores the persisted set from it before reconciling)."""
        self.stats.rescans += 1
        rejections, retry = self.directory.rescan()
        self.retry |= retry
        self.rejections.files(rejections)
        if reconcile:
            self.reconcile(None)

    def reconcile(self, names: set[str] | None, actor: str | None = None) -> None:
        """Make the running set match the desired set (for ``names``, or everything)."""
        if self.gate is not None and not self.gate.ok:
            log.info("audit log not writable: plugins.d is reconciled once it is")
            return  # the daemon rescans when the log works again
        running = self.plugins.running()
        desired = self.what_runs.desired(running)
        wanted = desired.wanted
        present = {c.name for c in self.directory.candidates()}  # refused ones included
        scope = set(wanted) | self.plugins.names() if names is None else names
        for conflict in desired.conflicts:
            if conflict.loser.name in scope:
                self.rejections.conflict(conflict)
        if self.prefetch is not None:
            new = [
                w for n in scope if (w := wanted.get(n)) is not None and running.get(n) != w.sha256
            ]
            if len(new) > 1:
                self.prefetch(new)  # compile in parallel; the swaps below find them ready
        for name in sorted(scope):
            try:
                self._reconcile_one(name, wanted.get(name), actor, name in present)
            except Exception:  # the per-plugin boundary: one plugin must not stop the rest
                log.exception("reconciling plugin %s failed; retried at the next rescan", name)

    def _reconcile_one(
        self, name: str, want: Candidate | None, actor: str | None, present: bool = False
    ) -> None:
        """``present``: plugins.d has files of ``name`` (refused ones, when ``want`` is None)."""
        host = self.plugins.get(name)
        if want is None:
            if present or self.what_runs.source_rejected(name):
                return  # only refused (or now rejected) files: keep what runs
            if host is not None:
                self.swaps.withdraw(host, actor or self.what_runs.last_owner(name))
            return
        identity = self._identity(host) if host is not None else None
        if host is not None and identity == want.sha256 and host.state is not State.FAILED:
            return  # running, paused, or quarantined with these very bytes
        waiting = host is not None and host.state is State.FAILED and self.restarts.waiting(name)
        if waiting and identity in (None, want.sha256):
            return  # the supervisor restarts it when its backoff is over
        host = self._host_for(name)
        if host.state is State.QUARANTINED:
            self.restarts.budget(name).reset()
        self.restarts.cancel(name)
        actor = actor or self.directory.actor_of(want.filename)  # else who put the file there
        self.swaps.bring_up(host, want, actor=actor)

    def _identity(self, host: PluginHost) -> str | None:
        """The bytes ``host`` runs, or is meant to run (its current version may be gone: a
        restart that failed leaves none)."""
        if host.current is not None:
            return host.current.sha256
        target = self.swaps.targets.get(host.name)
        return target.sha256 if target is not None else None

    # --- supervision ------------------------------------------------------------------------

    def fault(self, host: PluginHost, version: Version, exc: PluginFault) -> None:
        """A call or tick faulted (posted to the loop by the host)."""
        if self.plugins.get(host.name) is not host or host.state is not State.FAILED:
            return
        # The fault happened all the same: a lost record (counted in the next audit.gap) must
        # not stop the supervision.
        with contextlib.suppress(AuditError):
            self.audit.record(
                AuditEvent(EventName.PLUGIN_FAILED, plugin=host.name, version=version.version,
                           sha256=version.sha256, reason=exc.code, message=str(exc))
            )  # fmt: skip
        self.swaps.failed(host)

    def next_restart(self) -> float | None:
        return self.restarts.next()

    def run_due_restarts(self) -> None:
        for name in self.restarts.due():
            try:
                self._restart_due(name)
            except Exception:  # the per-plugin boundary, as in reconcile
                log.exception("restarting plugin %s failed", name)

    def _restart_due(self, name: str) -> None:
        host = self.plugins.get(name)
        if host is None or host.state is not State.FAILED:
            return
        retry_at = self.clock.monotonic() + AUDIT_RETRY_S
        if self.gate is not None and not self.gate.ok:
            self.restarts.restart_at[name] = retry_at  # no record, no restart: wait
            return
        want = self.what_runs.restart_target(name)
        if want is None:
            self._reconcile_one(name, None, None)
            return
        try:
            with self.gate.precondition() if self.gate else contextlib.nullcontext():
                self.audit.record(
                    AuditEvent(EventName.PLUGIN_RESTARTED, plugin=name, version=want.version,
                               sha256=want.sha256, reason=host.last_error)
                )  # fmt: skip
        except AuditError:  # refused: tried again once the log can be written
            self.restarts.restart_at[name] = retry_at
            return
        self.plugins.stats_of(name).restarts += 1
        self.swaps.bring_up(host, want, quiet=True)

    # --- for the operator's actions (see forgeoned.service.operations) -----------------------

    def restart(
        self, name: str, actor: str | None = None, reason: str = "operator", message: str = ""
    ) -> SwapResult:
        """Start the active version of ``name`` afresh (not for a quarantined one: see the
        operator's reset); ``reason`` and ``message`` go into its ``plugin.restarted``, which
        is recorded before anything changes (a restart the audit log cannot take is refused)."""
        host = self.plugins.host(name)
        want = self.what_runs.restart_target(name)
        if want is None:
            raise NotFoundError(f"plugin {name!r} has no version to start")
        self.audit.record(
            AuditEvent(EventName.PLUGIN_RESTARTED, plugin=name, version=want.version,
                       sha256=want.sha256, actor=actor, reason=reason, message=message)
        )  # fmt: skip
        self.plugins.stats_of(name).restarts += 1
        self.restarts.cancel(name)
        return self.swaps.bring_up(host, want, quiet=True, actor=actor)
