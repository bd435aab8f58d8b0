"""Turning the desired set (plugins.d) into running plugins, and keeping them running.

Everything here runs on the daemon's loop thread, one step at a time, so swaps of one plugin
never overlap and the restart budgets need no lock. Calls arrive on other threads and only
touch the :class:`PluginHost` objects.

A (name, sha256) whose swap was rejected or rolled back is remembered and not retried until
the desired file changes, an admin allows a downgrade, or the daemon reloads: a rescan must
not replay the same rejection every minute.

The operations an operator's actions are made of (withdraw a plugin, restoring it if that
fails; restart; reset) are methods here, so that nobody else changes the hosts;
:mod:`forgeoned.service.operations` builds the control API's use cases on them. ``actor`` is
who asked, recorded in the audit events the operation causes.

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

from forgeoned.core.desired import Candidate, desired_set
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State, Trigger
from forgeoned.core.ports import AuditGate, AuditSink, Clock
from forgeoned.core.stats import DaemonStats
from forgeoned.core.supervisor import RestartBudget, RestartPolicy
from forgeoned.core.swap_ports import Version
from forgeoned.core.swapper import Outcome, Swapper, SwapResult
from forgeoned.errors import AuditError, ForgeonedError, NotFoundError, PluginFault, StateError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.rejections import RejectionReport

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
    policy: RestartPolicy
    plugins: PluginTable
    rejections: RejectionReport
    post: Post
    budgets: dict[str, RestartBudget] = field(default_factory=dict)
    restart_at: dict[str, float] = field(default_factory=dict)
    attempted: set[tuple[str, str]] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)  # plugin names to reconcile (deferred)
    retry: set[str] = field(default_factory=set)  # file names to read again (changed mid-read)
    prefetch: Callable[[list[Candidate]], None] | None = None
    gate: AuditGate | None = None  # None: the audit log is taken to be writable

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

    def _budget(self, name: str) -> RestartBudget:
        return self.budgets.setdefault(name, RestartBudget(self.policy))

    # --- startup ----------------------------------------------------------------------------

    def start_persisted(self) -> int:
        """Start the active set recorded in the state; returns how many run."""
        quarantined = self.active.current.quarantined
        running = 0
        for cand in self.active.persisted():
            host = self._host_for(cand.name)
            if cand.name in quarantined:
                for trig in (Trigger.START, Trigger.FAULT, Trigger.QUARANTINE):
                    host.trigger(trig, "quarantined before restart")
                continue
            result = self.swapper.swap(host, cand, quiet=True)
            running += host.state is State.RUNNING
            self._after(host, cand, result)
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
        desired = desired_set(self.directory.candidates(), running)
        wanted = desired.wanted
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
                self._reconcile_one(name, wanted.get(name), actor)
            except Exception:  # the per-plugin boundary: one plugin must not stop the rest
                log.exception("reconciling plugin %s failed; retried at the next rescan", name)

    def _reconcile_one(self, name: str, want: Candidate | None, actor: str | None) -> None:
        host = self.plugins.get(name)
        if want is None:
            if self._source_rejected(name):
                return  # its file is still there but now rejected: keep what runs
            if host is not None:
                self.withdraw(host, actor or self._last_owner(name))
            return
        if (name, want.sha256) in self.attempted:
            return
        current = host.current.sha256 if host is not None and host.current is not None else None
        if host is not None and current == want.sha256 and host.state is not State.FAILED:
            return  # running, paused, or quarantined with these very bytes
        waiting = host is not None and host.state is State.FAILED and name in self.restart_at
        if waiting and current in (None, want.sha256):
            return  # the supervisor restarts it when its backoff is over
        host = self._host_for(name)
        if host.state is State.QUARANTINED:
            self._budget(name).reset()
        self.restart_at.pop(name, None)
        actor = actor or self.directory.actor_of(want.filename)  # else who put the file there
        self._after(host, want, self.swapper.swap(host, want, actor=actor))

    def withdraw(self, host: PluginHost, actor: str | None = None) -> None:
        """Stop, unload and forget a plugin; if that fails (its state cannot be written) the
        host is put back, so that the next reconcile tries again."""
        name = host.name
        # New calls see "no such plugin" from now on; in-flight ones finish (drain).
        self.plugins.pop(name)
        self.restart_at.pop(name, None)
        try:
            self.swapper.remove(host, actor)
        except ForgeonedError:
            self.plugins.put(host)
            raise
        self.budgets.pop(name, None)

    def _last_owner(self, name: str) -> str | None:
        """Who owned the file the active version of ``name`` came from (its removal's actor
        when no operator asked for it)."""
        record = self.active.current.active.get(name)
        return self.directory.actor_of(record.source) if record is not None else None

    def _source_rejected(self, name: str) -> bool:
        """Whether the file the active version came from is present but failed to verify."""
        record = self.active.current.active.get(name)
        entry = self.directory.entries.get(record.source) if record is not None else None
        return entry is not None and entry.error is not None

    def _after(self, host: PluginHost, cand: Candidate, result: SwapResult) -> None:
        own_fault = result.error is not None and isinstance(result.error, StateError)
        if result.outcome in (Outcome.REJECTED, Outcome.ROLLED_BACK) and not own_fault:
            self.attempted.add((host.name, cand.sha256))  # the same bytes would fail again
        elif result.outcome is Outcome.FAILED:
            self._failed(host)
        if (
            host.state is State.STOPPED
            and host.current is None
            and result.outcome is Outcome.REJECTED
        ):
            self.plugins.pop(host.name)  # nothing ever ran under this name

    # --- supervision ------------------------------------------------------------------------

    def fault(self, host: PluginHost, version: Version, exc: PluginFault) -> None:
        """A call or tick faulted (posted to the loop by the host)."""
        if self.plugins.get(host.name) is not host or host.state is not State.FAILED:
            return
        # The fault happened all the same: a lost record (counted in the next audit.gap) must
        # not stop the supervision.
        with contextlib.suppress(AuditError):
            self.audit.record(
                AuditEvent(
                    EventName.PLUGIN_FAILED,
                    plugin=host.name,
                    version=version.version,
                    sha256=version.sha256,
                    reason=exc.code,
                    message=str(exc),
                )
            )
        self._failed(host)

    def _failed(self, host: PluginHost) -> None:
        now = self.clock.monotonic()
        decision = self._budget(host.name).record_failure(now)
        if not decision.quarantined:
            self.restart_at[host.name] = decision.at
            return
        self.restart_at.pop(host.name, None)
        v = host.current
        # The event is durable before the state says quarantined (a status reader must
        # never see a quarantine the audit log and state file do not have yet); quarantining
        # happens even if the audit write fails: keeping a crash-looping plugin down is safe
        # (the record is counted as lost in the next audit.gap).
        try:
            self.audit.record(
                AuditEvent(
                    EventName.PLUGIN_QUARANTINED,
                    plugin=host.name,
                    version=v.version if v is not None else None,
                    sha256=v.sha256 if v is not None else None,
                    reason="restart_budget",
                    message=f"{decision.failures_in_window} failures within "
                    f"{self.policy.window_s:g}s (limit {self.policy.max_failures})",
                )
            )
        except AuditError:
            log.warning("quarantining %s without its audit record", host.name)
        finally:
            self.active.set_quarantined(host.name, True)
            host.trigger(Trigger.QUARANTINE, host.last_error)

    def next_restart(self) -> float | None:
        return min(self.restart_at.values(), default=None)

    def run_due_restarts(self) -> None:
        now = self.clock.monotonic()
        for name in sorted(n for n, t in self.restart_at.items() if t <= now):
            del self.restart_at[name]
            try:
                self._restart_due(name, now)
            except Exception:  # the per-plugin boundary, as in reconcile
                log.exception("restarting plugin %s failed", name)

    def _restart_due(self, name: str, now: float) -> None:
        host = self.plugins.get(name)
        if host is None or host.state is not State.FAILED:
            return
        if self.gate is not None and not self.gate.ok:
            self.restart_at[name] = now + AUDIT_RETRY_S  # no record, no restart: wait
            return
        want = self._wanted(name)
        if want is None:
            self._reconcile_one(name, None, None)
            return
        try:
            with self.gate.precondition() if self.gate else contextlib.nullcontext():
                self.audit.record(
                    AuditEvent(
                        EventName.PLUGIN_RESTARTED,
                        plugin=name,
                        version=want.version,
                        sha256=want.sha256,
                        reason=host.last_error,
                    )
                )
        except AuditError:  # refused: tried again once the log can be written
            self.restart_at[name] = now + AUDIT_RETRY_S
            return
        self.plugins.stats_of(name).restarts += 1
        self._after(host, want, self.swapper.swap(host, want, quiet=True))

    def _wanted(self, name: str) -> Candidate | None:
        running = self.plugins.running()
        return desired_set(self.directory.candidates(), running).wanted.get(name)

    # --- operator actions (see forgeoned.service.operations) --------------------------------

    def reset(self, name: str, actor: str | None = None) -> None:
        """Clear the restart budget and quarantine of ``name`` and start it again."""
        host = self.plugins.host(name)
        host.trigger(Trigger.RESET)
        self._budget(name).reset()
        self.active.set_quarantined(name, False)
        self.attempted = {a for a in self.attempted if a[0] != name}
        if (old := host.current) is not None:
            host.install(None)
            self.swapper.retirer.retire(name, old)
        want = self._wanted(name)
        if want is not None:
            self._after(host, want, self.swapper.swap(host, want, actor=actor))

    def restart(
        self, name: str, actor: str | None = None, reason: str = "operator", message: str = ""
    ) -> None:
        """Start the wanted version of ``name`` again (a quarantined one is reset);
        ``reason`` and ``message`` go into its ``plugin.restarted`` event."""
        host = self.plugins.host(name)
        want = self._wanted(name)
        if want is None:
            raise NotFoundError(f"plugin {name!r} has no artifact in plugins.d")
        # The record comes before any change: a restart the audit log cannot take is refused.
        self.audit.record(
            AuditEvent(EventName.PLUGIN_RESTARTED, plugin=name, version=want.version,
                       sha256=want.sha256, actor=actor, reason=reason, message=message)
        )  # fmt: skip
        if host.state is State.QUARANTINED:
            self.reset(name, actor)
            return
        self.plugins.stats_of(name).restarts += 1
        self.restart_at.pop(name, None)
        self._after(host, want, self.swapper.swap(host, want, quiet=True, actor=actor))

    def forget_attempts(self, name: str | None = None) -> None:
        self.attempted = {a for a in self.attempted if name is not None and a[0] != name}
