"""What an operator can do to the plugins: the control API's use cases.

Each action runs on the daemon loop (the control facade posts it there and waits), is built
on the reconciler's operations, and records ``actor`` (who asked) in the audit events it
causes: the swap events of an install or a removal, ``plugin.paused``, ``plugin.reset``…
The read-only views go straight to the plugin table (any thread).

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
import hashlib
from collections.abc import Callable
from typing import Any

from forgeoned.core.abi import LifecycleExport
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State, Trigger, transition
from forgeoned.core.policy import Action
from forgeoned.core.ports import AuditGate, AuditSink
from forgeoned.core.stats import PluginView
from forgeoned.errors import ApplicationError, ArtifactError, AuditError, ConflictError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.plugin_index import PluginDirectory
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
        self._gate = gate

    # --- views (any thread) -----------------------------------------------------------------

    def views(self) -> list[PluginView]:
        return self._plugins.views()

    def view(self, name: str) -> PluginView:
        return self._plugins.host(name).view()

    def find(self, name: str) -> PluginHost | None:
        return self._plugins.get(name)

    # --- actions (the daemon loop) ----------------------------------------------------------

    def add(
        self,
        filename: str,
        data: bytes,
        actor: str | None = None,
        *,
        plugin: str | None = None,
        version: str | None = None,
    ) -> None:
        """Write an (already verified) artifact into plugins.d and bring it into service;
        ``plugin`` and ``version`` (from its manifest) go into the ``control.requested``."""
        sha256 = hashlib.sha256(data).hexdigest()

        def run() -> None:
            self._audit.record(
                _requested(Action.INSTALL, plugin, actor, {"file": filename}, version, sha256)
            )
            self._directory.write(filename, data)
            self._reconciler.files_changed({filename}, actor=actor)

        self._guard(run, f"install {filename}")

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
        # The reconciler records plugin.restarted before it changes anything.
        self._guard(lambda: self._reconciler.restart(name, actor), f"restart {name}")

    def reset(self, name: str, actor: str | None = None) -> None:
        """Clear a quarantine and start the plugin again."""

        def run() -> None:
            host = self._plugins.host(name)
            if host.state is not State.QUARANTINED:
                raise ConflictError(f"plugin {name!r} is {host.state.value}, not quarantined")
            self._record(EventName.PLUGIN_RESET, host, actor)
            self._reconciler.reset(name, actor)

        self._guard(run, f"reset {name}")

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        """Let ``version`` of ``name`` through the rollback floor once, and try it now."""

        def run() -> None:
            self._audit.record(_requested(Action.ALLOW_DOWNGRADE, name, actor, version=version))
            self._active.allow_downgrade(name, version, actor)
            self._reconciler.forget_attempts(name)
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
            self._reconciler.withdraw(host)

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
