"""What an operator can do to the plugins: the control API's use cases.

Each action runs on the daemon loop (the control facade posts it there and waits), is built
on the reconciler's operations, and records ``actor`` (who asked) in the audit events it
causes: the swap events of an install or a removal, ``plugin.paused``, ``plugin.reset``…
The read-only views (any thread) come from :class:`~forgeoned.service.plugin_status.PluginStatus`.

``restart`` and ``reset`` bring back the plugin's *active* version (never a refused
candidate: ``retry`` lets those try again) and raise the error of a restart that fails, after
the supervisor took it in hand, so that the caller hears the truth.

Every action fails closed on the audit log (``gate.guard``): its first record is written,
durably, before anything changes, so an action the log cannot record raises
AuditUnavailableError (503 ``audit_unavailable``) and leaves everything as it was. Pause,
resume, reset and restart write their own event first; install, remove and allow-downgrade,
whose own events come from the swap they cause, write ``control.requested`` first.

A plugin may refuse a pause or a resume (its export returns non-zero): then the state it stays
in is recorded after the first record, as ``plugin.resumed`` (reason ``pause_status``) or
``plugin.paused`` (reason ``resume_status``), so that the trail ends where the plugin is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from forgeoned.core.abi import LifecycleExport
from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State, Trigger, transition
from forgeoned.core.policy import Action
from forgeoned.core.ports import AuditGate, AuditSink, InstallReport
from forgeoned.core.stats import PluginView
from forgeoned.core.swap_outcome import SwapResult
from forgeoned.errors import (
    ApplicationError,
    ArtifactError,
    AuditError,
    ConflictError,
    NotFoundError,
)
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.install import Installer
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_status import PluginStatus
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.reconciler import Reconciler

Recheck = Callable[[str], ArtifactError | None]  # whether kept bytes (by sha256) still verify


class PluginOperations:
    def __init__(
        self,
        reconciler: Reconciler,
        plugins: PluginTable,
        directory: PluginDirectory,
        active: ActiveSet,
        audit: AuditSink,
        gate: AuditGate | None = None,
    ) -> None:
        self._reconciler = reconciler
        self._plugins = plugins
        self._directory = directory
        self._active = active
        self._audit = audit
        self.status = PluginStatus(
            plugins, active, reconciler.refusals, reconciler.swaps.targets, directory
        )
        self.installer = Installer(
            reconciler, directory, plugins, self.status, reconciler.rejections
        )
        self._gate = gate

    # --- views (any thread) -----------------------------------------------------------------

    def views(self) -> list[PluginView]:
        return self.status.views()

    def view(self, name: str) -> PluginView:
        return self.status.view(name)

    def find(self, name: str) -> PluginHost | None:
        return self._plugins.get(name)

    # --- actions (the daemon loop) ----------------------------------------------------------

    def install(
        self, cand: Candidate, data: bytes, detached: bytes | None, actor: str | None = None
    ) -> InstallReport:
        """Write a verified upload into plugins.d and bring it in (see
        :mod:`forgeoned.service.install`); ``control.requested`` is written first."""
        out: list[InstallReport] = []

        def run() -> None:
            self._audit.record(
                _requested(Action.INSTALL, cand.name, actor, {"file": cand.filename},
                           cand.version, cand.sha256)
            )  # fmt: skip
            out.append(self.installer.install(cand, data, detached, actor))

        self._guard(run, f"install {cand.filename}")
        return out[0]

    def refuse_upload(self, filename: str, error: ArtifactError, actor: str | None) -> None:
        self.installer.refused(filename, error, actor)

    def remove(self, name: str, actor: str | None = None) -> None:
        """Delete every file of plugin ``name`` from plugins.d and stop it."""

        def run() -> None:
            v = self._plugins.host(name).current
            self._audit.record(
                _requested(Action.REMOVE, name, actor, version=v.version if v else None,
                           sha256=v.sha256 if v else None)
            )  # fmt: skip
            files = self._directory.files_of(name)
            for filename in files:
                self._directory.delete(filename)
            self._reconciler.files_changed(files, actor=actor)
            if name in self._plugins:
                self._reconciler.reconcile({name}, actor)

        self._guard(run, f"remove {name}")

    def pause(self, name: str, actor: str | None = None) -> None:
        def run() -> None:
            host = self._plugins.host(name)
            transition(host.state, Trigger.PAUSE)  # an illegal pause is refused unrecorded
            self._record(EventName.PLUGIN_PAUSED, host, actor)
            try:
                host.pause(self._reconciler.drain_timeout_s)
            except ApplicationError as refused:  # it stays running: the trail says so
                self._record(EventName.PLUGIN_RESUMED, host, actor, refused)
                raise

        self._guard(run, f"pause {name}")

    def resume(self, name: str, actor: str | None = None) -> None:
        def run() -> None:
            host = self._plugins.host(name)
            transition(host.state, Trigger.RESUME)
            self._record(EventName.PLUGIN_RESUMED, host, actor)
            try:
                host.resume()
            except ApplicationError as refused:  # it stays paused: the trail says so
                self._record(EventName.PLUGIN_PAUSED, host, actor, refused)
                raise

        self._guard(run, f"resume {name}")

    def restart(self, name: str, actor: str | None = None) -> None:
        """Start the active version of ``name`` afresh (a quarantined one: see ``reset``)."""

        def run() -> None:
            host = self._plugins.host(name)
            if host.state is State.QUARANTINED:
                self._reset(name, actor)
                return
            # The reconciler records plugin.restarted before it changes anything.
            _raise_failure(self._reconciler.restart(name, actor), "the restart")

        self._guard(run, f"restart {name}")

    def reset(self, name: str, actor: str | None = None) -> None:
        """Clear a quarantine and start the plugin's active version again."""
        self._guard(lambda: self._reset(name, actor), f"reset {name}")

    def _reset(self, name: str, actor: str | None) -> None:
        rec = self._reconciler
        host = self._plugins.host(name)
        if host.state is not State.QUARANTINED:
            raise ConflictError(f"plugin {name!r} is {host.state.value}, not quarantined")
        want = self._restart_target(name)
        self._audit.record(
            AuditEvent(EventName.PLUGIN_RESET, plugin=name, actor=actor, version=want.version,
                       sha256=want.sha256)
        )  # fmt: skip
        host.trigger(Trigger.RESET)
        rec.restarts.budget(name).reset()
        self._active.set_quarantined(name, False)
        _raise_failure(rec.swaps.bring_up(host, want, actor=actor), "the reset's start")

    def _restart_target(self, name: str) -> Candidate:
        want = self._reconciler.what_runs.restart_target(name)
        if want is None:
            raise NotFoundError(f"plugin {name!r} has no version to start")
        return want

    def retry(self, name: str, actor: str | None = None) -> PluginView | None:
        """Let the refused candidates of ``name`` be tried again, and try at once; raises the
        error of the one tried if it is refused again."""
        rec = self._reconciler
        refused = rec.refusals.of(name)
        if not refused:
            raise ConflictError(
                f"plugin {name!r} has no rejected, rolled-back or failed version to retry"
            )
        latest = refused[-1]
        versions = ", ".join(f"{r.version} ({r.kind.value})" for r in refused)

        def run() -> None:
            self._audit.record(
                AuditEvent(EventName.PLUGIN_RETRY_ALLOWED, plugin=name, version=latest.version,
                           sha256=latest.sha256, actor=actor, reason=latest.reason,
                           message=f"may be tried again: {versions}")
            )  # fmt: skip
            rec.refusals.forget(name)
            rec.swaps.last.pop(name, None)
            rec.reconcile({name}, actor)

        self._guard(run, f"retry {name}")
        if (last := rec.swaps.last.get(name)) is not None:
            _raise_failure(last[1], f"{name} {last[0].version}")
        return self.status.view(name) if name in self._plugins else None

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        """Let ``version`` of ``name`` through the rollback floor once, and try it now."""

        def run() -> None:
            self._audit.record(_requested(Action.ALLOW_DOWNGRADE, name, actor, version=version))
            self._active.allow_downgrade(name, version, actor)
            self._reconciler.refusals.forget(name)
            self._reconciler.reconcile({name}, actor)

        self._guard(run, f"allow downgrade of {name}")

    def withdraw_untrusted(self, recheck: Recheck) -> None:
        """Stop every running version whose exact bytes the (new) trust refuses, e.g. signed
        only by a key that was just revoked: revoking a key must not leave its code running."""
        for name, record in sorted(self._active.current.active.items()):
            host = self._plugins.get(name)
            error = recheck(record.sha256) if host is not None else None
            if host is None or error is None:
                continue
            # Withdrawn even if the record is lost: untrusted code must not keep running.
            with contextlib.suppress(AuditError):
                self._audit.record(
                    AuditEvent(EventName.PLUGIN_REJECTED, plugin=name, version=record.version,
                               sha256=record.sha256, reason=error.code,
                               message=f"{record.source}: running version no longer trusted: "
                               f"{error}", details={"file": record.source})
                )  # fmt: skip
            self._reconciler.swaps.withdraw(host)

    def _record(
        self,
        event: EventName,
        host: PluginHost,
        actor: str | None,
        refused: ApplicationError | None = None,
    ) -> None:
        """``event`` for ``host``; after a refusal, with the export's status as the reason."""
        v = host.current
        reason = LifecycleExport(refused.export).status_reason if refused is not None else None
        self._audit.record(
            AuditEvent(event, plugin=host.name, actor=actor,
                       version=v.version if v is not None else None,
                       sha256=v.sha256 if v is not None else None,
                       reason=reason, message=str(refused or ""),
                       details={"status": refused.status} if refused is not None else {})
        )  # fmt: skip

    def _guard(self, action: Callable[[], None], what: str) -> None:
        if self._gate is None:
            action()
        else:
            self._gate.guard(action, what)


def _raise_failure(result: SwapResult, what: str) -> None:
    """Raise the error of a swap that did not bring its version up (its audit reason)."""
    if result.error is not None:
        result.error.add_note(f"{what} {result.outcome.value.replace('_', ' ')}")
        raise result.error


def _requested(
    action: Action,
    plugin: str | None,
    actor: str | None,
    details: dict[str, Any] | None = None,
    version: str | None = None,
    sha256: str | None = None,
) -> AuditEvent:
    """``control.requested``: written before an action whose own events come later."""
    target = plugin or (details or {}).get("file", "?")
    return AuditEvent(
        EventName.CONTROL_REQUESTED,
        plugin=plugin,
        version=version,
        sha256=sha256,
        actor=actor,
        message=f"{actor or 'someone'} requested {action.value} of {target}",
        details={"action": action.value, **(details or {})},
    )
