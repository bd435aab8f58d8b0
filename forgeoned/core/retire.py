"""Taking a version out of service for good: ``stop`` and ``unload``, and what they answered.

Once a swap or a removal has moved calls off a version, its ``stop`` and ``unload`` no longer
decide anything: the swap or removal completes whatever they return. A non-zero status or a
trap is still recorded, as ``plugin.failed`` with the reason ``stop_status`` /
``unload_status`` (or the trap's kind) and ``details.export``, so an operator sees a plugin
that cannot shut down cleanly. :class:`RetireInline` does it on the caller's thread (unit
tests; the daemon's own shutdown, which waits for it anyway); the daemon loop uses a
background retirer (:mod:`forgeoned.service.retirer`) so that a slow ``stop`` never holds it.
"""

from __future__ import annotations

from typing import Any

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import AuditSink
from forgeoned.core.swap_ports import ShutdownFault, Version
from forgeoned.errors import PluginStatusError


def shutdown_event(name: str, version: Version, fault: ShutdownFault) -> AuditEvent:
    """The ``plugin.failed`` event of one ``stop``/``unload`` that did not return 0."""
    error = fault.error
    details: dict[str, Any] = {"export": fault.export.value}
    if isinstance(error, PluginStatusError):
        reason = fault.export.status_reason
        details["status"] = error.status
        what = f"returned status {error.status}"
    else:
        reason = error.code
        what = f"failed: {error}"
    return AuditEvent(
        EventName.PLUGIN_FAILED,
        plugin=name,
        version=version.version,
        sha256=version.sha256,
        reason=reason,
        message=f"{fault.export.value} of {version.version} {what} (it is out of service anyway)",
        details=details,
    )


def shut_down(audit: AuditSink, name: str, version: Version) -> None:
    """``version.shutdown()`` here and now, each failure audited."""
    for fault in version.shutdown():
        audit.record(shutdown_event(name, version, fault))


class RetireInline:
    """A :class:`~forgeoned.core.swap_ports.Retirer` that shuts down on the caller's thread."""

    def __init__(self, audit: AuditSink) -> None:
        self._audit = audit

    def retire(self, name: str, version: Version) -> None:
        shut_down(self._audit, name, version)
