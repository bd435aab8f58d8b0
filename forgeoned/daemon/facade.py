"""The daemon as the control API and the metrics collector see it.

Requests that change the running set are executed on the daemon loop (one at a time, after
any swap in progress) and waited for; ``invoke`` and the read-only views run on the caller's
thread and only touch the plugin hosts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.adapters.files.state_store import DowngradeOverride
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.stats import DaemonStats, PluginView
from forgeoned.errors import BadRequestError, ConflictError, NotFoundError
from forgeoned.service.plugin_host import UnavailableError

if TYPE_CHECKING:
    from forgeoned.daemon.main import Daemon

_SAFE_FILE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.wasm$")


class DaemonBackend:
    """Implements ``ControlBackend`` and ``MetricsSource`` for a :class:`Daemon`."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    # --- views ------------------------------------------------------------------------------

    def list_plugins(self) -> list[PluginView]:
        return [h.view() for _, h in sorted(self.d.reconciler.hosts.items())]

    def plugin_views(self) -> list[PluginView]:
        return self.list_plugins()

    def daemon_stats(self) -> DaemonStats:
        return self.d.stats

    def get_plugin(self, name: str) -> PluginView:
        return self.d.reconciler.host(name).view()

    # --- changes ----------------------------------------------------------------------------

    def install(self, data: bytes, filename: str, actor: str) -> PluginView | None:
        artifact = self.d.verify(data, None)  # raises ArtifactError: nothing is written
        m = artifact.manifest
        name = filename.rsplit("/", 1)[-1]
        if not _SAFE_FILE.match(name):
            name = f"{m.name}-{m.version}.wasm"
        path = self.d.config.plugins_dir / name
        self.d.loop.call(lambda: atomic_write(path, data, 0o644))
        self.d.loop.call(lambda: self.d.files_changed({name}))
        host = self.d.reconciler.hosts.get(m.name)
        return host.view() if host is not None else None

    def remove(self, name: str, actor: str) -> None:
        def run() -> None:
            self.d.reconciler.host(name)
            entries = self.d.directory.entries.items()
            files = {f for f, e in entries if e.candidate and e.candidate.name == name}
            for filename in files:
                path = self.d.directory.path_of(filename)
                path.unlink(missing_ok=True)
                path.with_name(path.name + ".sig").unlink(missing_ok=True)
            self.d.files_changed(files)
            if name in self.d.reconciler.hosts:
                self.d.reconciler.reconcile({name})

        self.d.loop.call(run)

    def pause(self, name: str, actor: str) -> None:
        def run() -> None:
            host = self.d.reconciler.host(name)
            host.pause(self.d.config.drain_timeout_s)
            self._event(EventName.PLUGIN_PAUSED, name, actor)

        self.d.loop.call(run)

    def resume(self, name: str, actor: str) -> None:
        def run() -> None:
            host = self.d.reconciler.host(name)
            host.resume()
            self._event(EventName.PLUGIN_RESUMED, name, actor)

        self.d.loop.call(run)

    def restart(self, name: str, actor: str) -> None:
        self.d.loop.call(lambda: self.d.reconciler.restart(name))

    def reset(self, name: str, actor: str) -> None:
        def run() -> None:
            host = self.d.reconciler.host(name)
            if host.state is not State.QUARANTINED:
                raise ConflictError(f"plugin {name!r} is {host.state.value}, not quarantined")
            self.d.reconciler.reset(name)

        self.d.loop.call(run)
        self._event(EventName.PLUGIN_RESET, name, actor)

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        def run() -> None:
            st = self.d.store.state
            overrides = dict(st.overrides)
            overrides[name] = DowngradeOverride(version=version, actor=actor)
            self.d.store.update(overrides=overrides)
            self.d.reconciler.forget_attempts(name)
            self.d.reconciler.reconcile({name})

        self.d.loop.call(run)

    def invoke(self, name: str, data: bytes) -> bytes:
        host = self.d.reconciler.hosts.get(name)
        if host is None:
            raise NotFoundError(f"no plugin named {name!r}")
        try:
            return host.call(data)
        except UnavailableError:
            raise
        except NotFoundError as exc:
            raise BadRequestError(str(exc)) from exc

    def invoke_now(self, name: str, data: bytes) -> bytes | None:
        host = self.d.reconciler.hosts.get(name)
        if host is None:
            return None  # invoke() answers that
        try:
            return host.call_now(data)
        except NotFoundError as exc:
            raise BadRequestError(str(exc)) from exc

    def reload(self, actor: str) -> None:
        self.d.loop.call(self.d.reload)

    # --- audit ------------------------------------------------------------------------------

    def audit_entries(self, since: float | None) -> list[dict[str, Any]]:
        return list(self.d.audit_log.entries(since))

    def audit_verify(self) -> dict[str, Any]:
        return self.d.audit_log.verify().to_dict()

    def _event(self, event: EventName, name: str, actor: str) -> None:
        host = self.d.reconciler.hosts.get(name)
        v = host.current if host is not None else None
        self.d.audit.record(
            AuditEvent(
                event,
                plugin=name,
                actor=actor,
                version=v.version if v is not None else None,
                sha256=v.sha256 if v is not None else None,
            )
        )
