"""The supervisor's bookkeeping: each failed plugin's restart budget, when it restarts next,
and its quarantine once the budget is spent (audited, persisted with its cause, shown).

What a restart brings back is the reconciler's business (the active version); this module
only says *when*, and stops the restarts of a crash loop. Everything runs on the daemon loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import Trigger
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.state import QuarantineCause
from forgeoned.core.supervisor import RestartBudget, RestartPolicy
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_host import PluginHost


@dataclass
class RestartSchedule:
    policy: RestartPolicy
    clock: Clock
    audit: AuditSink
    active: ActiveSet
    budgets: dict[str, RestartBudget] = field(default_factory=dict)
    restart_at: dict[str, float] = field(default_factory=dict)  # monotonic seconds

    def budget(self, name: str) -> RestartBudget:
        return self.budgets.setdefault(name, RestartBudget(self.policy))

    def waiting(self, name: str) -> bool:
        """Whether a restart of ``name`` is scheduled."""
        return name in self.restart_at

    def cancel(self, name: str) -> None:
        self.restart_at.pop(name, None)

    def forget(self, name: str) -> None:
        self.restart_at.pop(name, None)
        self.budgets.pop(name, None)

    def next(self) -> float | None:
        return min(self.restart_at.values(), default=None)

    def due(self) -> list[str]:
        """The names whose restart is due now (no longer scheduled once returned)."""
        now = self.clock.monotonic()
        names = sorted(n for n, t in self.restart_at.items() if t <= now)
        for name in names:
            del self.restart_at[name]
        return names

    def failed(self, host: PluginHost, version: str | None, sha256: str | None) -> None:
        """``host`` failed (it is FAILED): schedule its restart, or quarantine it."""
        decision = self.budget(host.name).record_failure(self.clock.monotonic())
        if not decision.quarantined:
            self.restart_at[host.name] = decision.at
            return
        self.restart_at.pop(host.name, None)
        message = (
            f"{decision.failures_in_window} failures within "
            f"{self.policy.window_s:g}s (limit {self.policy.max_failures})"
        )
        cause = QuarantineCause(
            "restart_budget", message, host.last_error_text or "", self.clock.wall()
        )
        # The event is durable before the state says quarantined (a status reader must
        # never see a quarantine the audit log and state file do not have yet); quarantining
        # happens even if the audit write fails: keeping a crash-looping plugin down is safe.
        try:
            self.audit.record(
                AuditEvent(
                    EventName.PLUGIN_QUARANTINED,
                    plugin=host.name,
                    version=version,
                    sha256=sha256,
                    reason=cause.reason,
                    message=f"{message}; last error: {cause.last_error}"
                    if cause.last_error
                    else message,
                )
            )
        finally:
            self.active.set_quarantined(host.name, True, cause)
            host.trigger(Trigger.QUARANTINE, host.last_error)
