"""Audit events: the names, their fixed journald MESSAGE_IDs and priorities, and the event value.

A MESSAGE_ID never changes once released: operators and SIEM rules match on it, and
``systemd/forgeoned.catalog`` documents each one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

# syslog priorities as journald uses them
PRIO_CRIT = 2
PRIO_ERR = 3
PRIO_WARNING = 4
PRIO_NOTICE = 5
PRIO_INFO = 6
PRIO_DEBUG = 7


class EventName(enum.Enum):
    """Every audit event forgeoned emits: (name, MESSAGE_ID, priority)."""

    PLUGIN_INSTALLED = ("plugin.installed", "3a41b2b6d10c402994c9e55e59e32e9a", PRIO_NOTICE)
    PLUGIN_UPGRADED = ("plugin.upgraded", "605d86fb5fef40b99e8cabb752e6d396", PRIO_NOTICE)
    PLUGIN_REMOVED = ("plugin.removed", "264ceb939dcf412cb5dcf1d47ea43156", PRIO_NOTICE)
    PLUGIN_REJECTED = ("plugin.rejected", "0f3a1aa9fdb44b609bfbb13364096b8f", PRIO_WARNING)
    PLUGIN_FAILED = ("plugin.failed", "2e4568b116b24218865d46e473c0cac4", PRIO_ERR)
    PLUGIN_RESTARTED = ("plugin.restarted", "7ab16fa8a4c2451d846b0bd52aee2ba0", PRIO_NOTICE)
    PLUGIN_QUARANTINED = ("plugin.quarantined", "3e7ed195829948a1b965500c3263eb61", PRIO_ERR)
    PLUGIN_ROLLED_BACK = ("plugin.rolled_back", "3c1bd858624449a2b3dff4020aa2cd53", PRIO_WARNING)
    PLUGIN_PAUSED = ("plugin.paused", "41171b0924df416caf4e6eb678476a06", PRIO_NOTICE)
    PLUGIN_RESUMED = ("plugin.resumed", "78077a81ac814673ab622672e1ebbef0", PRIO_NOTICE)
    PLUGIN_RESET = ("plugin.reset", "02d439fdb958459fba6920ebe0ae2f06", PRIO_NOTICE)
    PLUGIN_STARTED = ("plugin.started", "dec4d64673bd45ebbf26dbefbc805a54", PRIO_INFO)
    PLUGIN_STOPPED = ("plugin.stopped", "94a80452123041ea8357fe3f62699589", PRIO_INFO)
    # invoke calls, aggregated per interval and (caller, plugin, function, outcome)
    PLUGIN_CALLS = ("plugin.calls", "558f0b86308c4ad3b9f91a46e370bc79", PRIO_INFO)
    PLUGIN_DOWNGRADE_ALLOWED = (
        "plugin.downgrade_allowed",
        "bb5a18dddfcc40e5b32dc789df853fe5",
        PRIO_WARNING,
    )
    PLUGIN_RETRY_ALLOWED = (
        "plugin.retry_allowed",
        "dc90282ca1ed46879577f01d55972ef1",
        PRIO_NOTICE,
    )
    PLUGIN_UNSIGNED_LOADED = (
        "plugin.unsigned_loaded",
        "fa0a8f63b7f44be48cbf64a13aef85f7",
        PRIO_WARNING,
    )
    # a per-plugin configuration put in force (details: config_sha256; never secret values)
    PLUGIN_CONFIGURED = ("plugin.configured", "3218ccc45fd8437296baa2d128a8b82f", PRIO_NOTICE)
    # a plugin's configuration file refused (the config in force is kept)
    PLUGIN_CONFIG_REFUSED = (
        "plugin.config_refused",
        "b9554bc7bf0142c3ad4459ab886b5482",
        PRIO_WARNING,
    )
    PLUGIN_REVIEWED = ("plugin.reviewed", "f023008ebcde45efbe30332ffac20e19", PRIO_NOTICE)
    HOSTCALL_DENIED = ("hostcall.denied", "0d8f068d9d0947a9b03ec5bfbd311943", PRIO_WARNING)
    CONTROL_DENIED = ("control.denied", "c36945c226e54fa1a6f266a1725725ef", PRIO_WARNING)
    CONTROL_ACTION = ("control.action", "43f7de662f3442c9921ebd3b63226416", PRIO_NOTICE)
    # written before an install, removal or downgrade grant: no record, no action
    CONTROL_REQUESTED = ("control.requested", "9618d7b13cd44de98178ccd2314a3e35", PRIO_INFO)
    DAEMON_STARTED = ("daemon.started", "9876d392e8144b348df7b4a51d27d1d1", PRIO_NOTICE)
    DAEMON_STOPPED = ("daemon.stopped", "ddbfd1d9db7446e5aace5c94f1604df4", PRIO_NOTICE)
    DAEMON_RELOADED = ("daemon.reloaded", "cbe8585adb004a548a900791ffa2e537", PRIO_NOTICE)
    DAEMON_RELOAD_FAILED = (
        "daemon.reload_failed",
        "dc1bcd95ea204e889373f22eddd57b7a",
        PRIO_ERR,
    )
    # OCI sources (forgeoned.service.sources): a delivery into plugins.d, or why none was made
    SOURCE_SYNCED = ("source.synced", "f3fd5078f0534480b37b3640c4635429", PRIO_NOTICE)
    SOURCE_FAILED = ("source.failed", "b3bb12395944428ca7b49ca77e8f08c7", PRIO_WARNING)
    CONFIG_INSECURE = ("config.insecure", "ab06ab4577524ae3ad4188578d165baa", PRIO_ERR)
    AUDIT_CHECKPOINT = ("audit.checkpoint", "e7625135f7b04457aa8a97fbe6a5222b", PRIO_INFO)
    AUDIT_RECOVERED = ("audit.recovered", "15db02006c754151948e451f7c82a975", PRIO_WARNING)
    AUDIT_GAP = ("audit.gap", "93423fec7e2c446182390cc2b3f9b68d", PRIO_CRIT)
    AUDIT_ARCHIVED = ("audit.archived", "385039a451944c70ba1ec3eb0c152ba8", PRIO_NOTICE)
    AUDIT_KEY_ROTATED = ("audit.key_rotated", "5a357bbc0a7447019d4ae982bcc57e91", PRIO_NOTICE)

    @property
    def label(self) -> str:
        """The dotted event name, e.g. ``plugin.installed``."""
        return str(self.value[0])

    @property
    def message_id(self) -> str:
        return str(self.value[1])

    @property
    def priority(self) -> int:
        return int(self.value[2])

    @classmethod
    def from_label(cls, label: str) -> EventName:
        for member in cls:
            if member.label == label:
                return member
        raise ValueError(f"unknown audit event {label!r}")


# Plugin `log` host calls are journal entries but not audit events.
PLUGIN_LOG_MESSAGE_ID = "a72d6596ce914462a22f3b2dc2d287a1"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, before the audit log gives it ``seq``/``ts``/hash fields."""

    event: EventName
    plugin: str | None = None
    version: str | None = None
    sha256: str | None = None
    actor: str | None = None
    reason: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The event as the flat mapping the audit log stores (None fields omitted)."""
        out: dict[str, Any] = {"event": self.event.label}
        for key in ("plugin", "version", "sha256", "actor", "reason"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.message:
            out["message"] = self.message
        if self.details:
            out["details"] = dict(self.details)
        return out
