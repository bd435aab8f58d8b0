"""The daemon as the control API and the metrics collector see it.

Requests that change the running set are executed on the daemon loop (one at a time, after
any swap in progress) and waited for; ``invoke`` and the read-only views run on the caller's
thread and only touch the plugin hosts.

Every change fails closed on the audit log: its first audit record is written, durably, before
anything changes (``Outage.guard``), so a change the log cannot record answers 503
``audit_unavailable`` and leaves everything as it was. Pause, resume, reset and restart write
their own event first; install, remove and allow-downgrade, whose own events come from the swap
they cause, write ``control.requested`` first; reload writes ``daemon.reloaded`` first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.adapters.files.state_store import DowngradeOverride
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State, Trigger, transition
from forgeoned.core.policy import Action
from forgeoned.core.stats import DaemonStats, PluginView
from forgeoned.errors import BadRequestError, ConflictError, NotFoundError
from forgeoned.service.plugin_host import PluginHost

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
        request = _requested(Action.INSTALL, m.name, actor, m.version, artifact.sha256, name)

        def write() -> None:
            self.d.audit.record(request)
            atomic_write(path, data, 0o644)

        self.d.loop.call(lambda: self._guard(write, f"install {m.name}"))
        self.d.loop.call(lambda: self.d.files_changed({name}))
        host = self.d.reconciler.hosts.get(m.name)
        return host.view() if host is not None else None

    def remove(self, name: str, actor: str) -> None:
        def run() -> None:
            v = self.d.reconciler.host(name).current
            self.d.audit.record(
                _requested(Action.REMOVE, name, actor, v.version if v else None,
                           v.sha256 if v else None)
            )  # fmt: skip
            entries = self.d.directory.entries.items()
            files = {f for f, e in entries if e.candidate and e.candidate.name == name}
            for filename in files:
                path = self.d.directory.path_of(filename)
                path.unlink(missing_ok=True)
                path.with_name(path.name + ".sig").unlink(missing_ok=True)
            self.d.files_changed(files)
            if name in self.d.reconciler.hosts:
                self.d.reconciler.reconcile({name})

        self.d.loop.call(lambda: self._guard(run, f"remove {name}"))

    def pause(self, name: str, actor: str) -> None:
        def run() -> None:
            host = self.d.reconciler.host(name)
            transition(host.state, Trigger.PAUSE)  # an illegal pause is refused unrecorded
            self.d.audit.record(_event(EventName.PLUGIN_PAUSED, host, actor))
            host.pause(self.d.config.drain_timeout_s)

        self.d.loop.call(lambda: self._guard(run, f"pause {name}"))

    def resume(self, name: str, actor: str) -> None:
        def run() -> None:
            host = self.d.reconciler.host(name)
            transition(host.state, Trigger.RESUME)
            self.d.audit.record(_event(EventName.PLUGIN_RESUMED, host, actor))
            host.resume()

        self.d.loop.call(lambda: self._guard(run, f"resume {name}"))

    def restart(self, name: str, actor: str) -> None:
        # The reconciler records plugin.restarted before it changes anything.
        restart = functools.partial(self.d.reconciler.restart, name, actor)
        self.d.loop.call(lambda: self._guard(restart, f"restart {name}"))

    def reset(self, name: str, actor: str) -> None:
        def run() -> None:
            host = self.d.reconciler.host(name)
            if host.state is not State.QUARANTINED:
                raise ConflictError(f"plugin {name!r} is {host.state.value}, not quarantined")
            self.d.audit.record(_event(EventName.PLUGIN_RESET, host, actor))
            self.d.reconciler.reset(name)

        self.d.loop.call(lambda: self._guard(run, f"reset {name}"))

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        def run() -> None:
            self.d.audit.record(_requested(Action.ALLOW_DOWNGRADE, name, actor, version))
            st = self.d.store.state
            overrides = dict(st.overrides)
            overrides[name] = DowngradeOverride(version=version, actor=actor)
            self.d.store.update(overrides=overrides)
            self.d.reconciler.forget_attempts(name)
            self.d.reconciler.reconcile({name})

        self.d.loop.call(lambda: self._guard(run, f"allow downgrade of {name}"))

    def invoke(self, name: str, data: bytes) -> bytes:
        host = self.d.reconciler.hosts.get(name)
        if host is None:
            raise NotFoundError(f"no plugin named {name!r}")
        try:
            return host.call(data)
        except NotFoundError as exc:
            raise BadRequestError(str(exc)) from exc

    def reload(self, actor: str) -> None:
        self.d.loop.call(lambda: self.d.reload(actor))  # guarded like the others, see reload

    # --- audit ------------------------------------------------------------------------------

    def audit_entries(self, since: float | None) -> list[dict[str, Any]]:
        return list(self.d.audit_log.entries(since))

    def audit_verify(self) -> dict[str, Any]:
        return self.d.audit_log.verify().to_dict()

    def _guard(self, action: Callable[[], None], what: str) -> None:
        self.d.audit_outage.guard(action, what)


def _event(event: EventName, host: PluginHost, actor: str) -> AuditEvent:
    v = host.current
    return AuditEvent(
        event,
        plugin=host.name,
        actor=actor,
        version=v.version if v is not None else None,
        sha256=v.sha256 if v is not None else None,
    )


def _requested(
    action: Action,
    plugin: str,
    actor: str,
    version: str | None = None,
    sha256: str | None = None,
    filename: str | None = None,
) -> AuditEvent:
    """``control.requested``: written before an action whose own events come later."""
    details: dict[str, Any] = {"action": action.value}
    if filename is not None:
        details["file"] = filename
    return AuditEvent(
        EventName.CONTROL_REQUESTED,
        plugin=plugin,
        version=version,
        sha256=sha256,
        actor=actor,
        message=f"{actor} requested {action.value} of {plugin}",
        details=details,
    )
