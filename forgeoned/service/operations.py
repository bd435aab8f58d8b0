"""What an operator can do to the plugins: the control API's use cases.

Each action runs on the daemon loop (the control facade posts it there and waits), is built
on the reconciler's operations, and records ``actor`` (who asked) in the audit events it
causes: the swap events of an install or a removal, ``plugin.paused``, ``plugin.reset``…
The read-only views go straight to the plugin table (any thread).
"""

from __future__ import annotations

from collections.abc import Callable

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.ports import AuditSink
from forgeoned.core.stats import PluginView
from forgeoned.errors import ArtifactError, ConflictError
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
    ) -> None:
        self._reconciler = reconciler
        self._plugins = plugins
        self._directory = directory
        self._active = active
        self._audit = audit

    # --- views (any thread) -----------------------------------------------------------------

    def views(self) -> list[PluginView]:
        return self._plugins.views()

    def view(self, name: str) -> PluginView:
        return self._plugins.host(name).view()

    def find(self, name: str) -> PluginHost | None:
        return self._plugins.get(name)

    # --- actions (the daemon loop) ----------------------------------------------------------

    def add(self, filename: str, data: bytes, actor: str | None = None) -> None:
        """Write an (already verified) artifact into plugins.d and bring it into service."""
        self._directory.write(filename, data)
        self._reconciler.files_changed({filename}, actor=actor)

    def remove(self, name: str, actor: str | None = None) -> None:
        """Delete every file of plugin ``name`` from plugins.d and stop it."""
        self._plugins.host(name)
        files = self._directory.files_of(name)
        for filename in files:
            self._directory.delete(filename)
        self._reconciler.files_changed(files, actor=actor)
        if name in self._plugins:
            self._reconciler.reconcile({name}, actor)

    def pause(self, name: str, actor: str | None = None) -> None:
        host = self._plugins.host(name)
        host.pause(self._reconciler.drain_timeout_s)
        self._record(EventName.PLUGIN_PAUSED, host, actor)

    def resume(self, name: str, actor: str | None = None) -> None:
        host = self._plugins.host(name)
        host.resume()
        self._record(EventName.PLUGIN_RESUMED, host, actor)

    def restart(self, name: str, actor: str | None = None) -> None:
        self._reconciler.restart(name, actor)

    def reset(self, name: str, actor: str | None = None) -> None:
        """Clear a quarantine and start the plugin again."""
        host = self._plugins.host(name)
        if host.state is not State.QUARANTINED:
            raise ConflictError(f"plugin {name!r} is {host.state.value}, not quarantined")
        self._reconciler.reset(name, actor)
        self._record(EventName.PLUGIN_RESET, host, actor)

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        """Let ``version`` of ``name`` through the rollback floor once, and try it now."""
        self._active.allow_downgrade(name, version, actor)
        self._reconciler.forget_attempts(name)
        self._reconciler.reconcile({name}, actor)

    def withdraw_untrusted(self, recheck: Recheck) -> None:
        """Stop every running version whose exact bytes the (new) trust refuses, e.g. signed
        only by a key that was just revoked: revoking a key must not leave its code running."""
        for name, record in sorted(self._active.current.active.items()):
            host = self._plugins.get(name)
            error = recheck(record.sha256) if host is not None else None
            if host is None or error is None:
                continue
            self._audit.record(
                AuditEvent(EventName.PLUGIN_REJECTED, plugin=name, version=record.version,
                           sha256=record.sha256, reason=error.code,
                           message=f"{record.source}: running version no longer trusted: {error}",
                           details={"file": record.source})
            )  # fmt: skip
            self._reconciler.withdraw(host)

    def _record(self, event: EventName, host: PluginHost, actor: str | None) -> None:
        v = host.current
        self._audit.record(
            AuditEvent(event, plugin=host.name, actor=actor,
                       version=v.version if v is not None else None,
                       sha256=v.sha256 if v is not None else None)
        )  # fmt: skip
