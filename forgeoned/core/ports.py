"""Ports: the roles core logic needs from the outside world, implemented by adapters."""

from __future__ import annotations

from typing import Any, Protocol

from forgeoned.core.events import AuditEvent
from forgeoned.core.stats import PluginView


class Clock(Protocol):
    """Time source. ``monotonic`` for durations and deadlines, ``wall`` for timestamps."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


class AuditSink(Protocol):
    """Receives audit events. ``record`` returns only once the event is durable."""

    def record(self, event: AuditEvent) -> None: ...


class ControlBackend(Protocol):
    """What the control API asks of the daemon. ``actor`` is who asked (for the audit log).

    Every method raises a :class:`forgeoned.errors.ForgeonedError` subclass on failure
    (``NotFoundError`` for an unknown plugin, ``ArtifactError`` for a rejected upload, …).
    """

    def list_plugins(self) -> list[PluginView]: ...

    def get_plugin(self, name: str) -> PluginView: ...

    def install(self, data: bytes, filename: str, actor: str) -> PluginView | None:
        """Verify ``data``; if trusted write it atomically into plugins.d and wait for it."""
        ...

    def remove(self, name: str, actor: str) -> None: ...

    def pause(self, name: str, actor: str) -> None: ...

    def resume(self, name: str, actor: str) -> None: ...

    def restart(self, name: str, actor: str) -> None: ...

    def reset(self, name: str, actor: str) -> None:
        """Clear a quarantine and start the plugin again."""
        ...

    def allow_downgrade(self, name: str, version: str, actor: str) -> None: ...

    def invoke(self, name: str, data: bytes) -> bytes: ...

    def invoke_now(self, name: str, data: bytes) -> bytes | None:
        """Like :meth:`invoke` if an instance of ``name`` is free at once and no call waits
        for one; else None, having done nothing (it never waits)."""
        ...

    def reload(self, actor: str) -> None: ...

    def audit_entries(self, since: float | None) -> list[dict[str, Any]]: ...

    def audit_verify(self) -> dict[str, Any]: ...
