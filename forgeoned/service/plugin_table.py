"""The plugins by name: one :class:`PluginHost` each, created on the first swap of a name.

The daemon loop (the reconciler) adds and removes hosts; any thread may look one up: a call
routes through its host, a control request or a scrape reads the views, the tick scheduler
walks them. Each plugin's counters (:class:`PluginStats`) outlive its host, so that a removed
and re-installed plugin keeps counting where it was.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State, Trigger
from forgeoned.core.ports import AuditSink
from forgeoned.core.retire import shut_down
from forgeoned.core.stats import PluginStats, PluginView
from forgeoned.errors import NotFoundError
from forgeoned.service.plugin_host import OnFault, PluginHost

HostFactory = Callable[[str, PluginStats, OnFault], PluginHost]


class PluginTable:
    def __init__(self, make_host: HostFactory, stats: dict[str, PluginStats] | None = None) -> None:
        self._make_host = make_host
        self._hosts: dict[str, PluginHost] = {}
        self.stats: dict[str, PluginStats] = stats if stats is not None else {}

    # --- lookups (any thread) ---------------------------------------------------------------

    def get(self, name: str) -> PluginHost | None:
        return self._hosts.get(name)

    def host(self, name: str) -> PluginHost:
        found = self._hosts.get(name)
        if found is None:
            raise NotFoundError(f"no plugin named {name!r}")
        return found

    def __contains__(self, name: str) -> bool:
        return name in self._hosts

    def __len__(self) -> int:
        return len(self._hosts)

    def names(self) -> set[str]:
        return set(self._hosts)

    def all(self) -> list[PluginHost]:
        return list(self._hosts.values())

    def running(self) -> dict[str, str]:
        """The sha256 of the version each host has installed (names without one left out)."""
        return {n: v.sha256 for n, h in list(self._hosts.items()) if (v := h.current) is not None}

    def views(self) -> list[PluginView]:
        return [h.view() for _, h in sorted(self._hosts.items())]

    def state_counts(self) -> Counter[State]:
        return Counter(h.state for h in self.all())

    def stats_of(self, name: str) -> PluginStats:
        return self.stats.setdefault(name, PluginStats())

    # --- changes (the daemon loop) ----------------------------------------------------------

    def ensure(self, name: str, on_fault: OnFault) -> PluginHost:
        """The host of ``name``, created (stopped, empty) if there is none yet."""
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = self._make_host(name, self.stats_of(name), on_fault)
        return host

    def pop(self, name: str) -> PluginHost | None:
        """Forget ``name``: new calls see "no such plugin" from now on."""
        return self._hosts.pop(name, None)

    def put(self, host: PluginHost) -> None:
        self._hosts[host.name] = host

    # --- shutdown ---------------------------------------------------------------------------

    def stop_all(self, drain_timeout_s: float, audit: AuditSink) -> None:
        """Drain and stop every plugin (SIGTERM), each audited as ``plugin.stopped`` (and a
        ``stop``/``unload`` that failed as ``plugin.failed``); the active set stays as it is
        on disk (the next start brings the same versions back)."""
        for host in self.all():
            v = host.current
            if v is not None and host.state in (State.RUNNING, State.PAUSED):
                host.trigger(Trigger.DRAIN)
                host.drain(drain_timeout_s)
                shut_down(audit, host.name, v)
                host.trigger(Trigger.DRAINED)
                audit.record(
                    AuditEvent(EventName.PLUGIN_STOPPED, plugin=host.name, version=v.version,
                               sha256=v.sha256, reason="shutdown")
                )  # fmt: skip
            elif v is not None:
                shut_down(audit, host.name, v)
            host.install(None)
            host.release()

    def interrupt_all(self) -> None:
        """Interrupt every call still running (the shutdown timeout is over)."""
        for host in self.all():
            if (v := host.current) is not None:
                v.interrupt()
