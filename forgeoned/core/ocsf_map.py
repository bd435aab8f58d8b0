"""Which OCSF 1.8.0 class, activity, severity and status each audit event maps to.

One row per :class:`~forgeoned.core.events.EventName`; :mod:`forgeoned.core.ocsf` builds the
records from it and ``docs/operations.md`` shows it as a table (a test keeps the two equal).
The classes are the ones that fit a plugin host: Application Lifecycle for what happens to a
plugin or the daemon, API Activity for control-API requests, Application Error for a failed
plugin, Detection Finding for a plugin reaching past its capabilities, Compliance Finding for
an insecure configuration, Event Log Activity for what happens to the audit log itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from forgeoned.core.events import EventName

OCSF_VERSION: Final = "1.8.0"


class OcsfClass(enum.Enum):
    """(class_uid, class name, category_uid, category name)."""

    APPLICATION_LIFECYCLE = (6002, "Application Lifecycle", 6, "Application Activity")
    API_ACTIVITY = (6003, "API Activity", 6, "Application Activity")
    APPLICATION_ERROR = (6008, "Application Error", 6, "Application Activity")
    DETECTION_FINDING = (2004, "Detection Finding", 2, "Findings")
    COMPLIANCE_FINDING = (2003, "Compliance Finding", 2, "Findings")
    EVENT_LOG_ACTIVITY = (1008, "Event Log Activity", 1, "System Activity")

    @property
    def uid(self) -> int:
        return int(self.value[0])

    @property
    def caption(self) -> str:
        return str(self.value[1])

    @property
    def category_uid(self) -> int:
        return int(self.value[2])

    @property
    def category_name(self) -> str:
        return str(self.value[3])


class Severity(enum.IntEnum):
    """OCSF ``severity_id``."""

    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5


class Status(enum.IntEnum):
    """OCSF ``status_id`` of the activity classes (findings use their own, see ocsf.py)."""

    UNKNOWN = 0
    SUCCESS = 1
    FAILURE = 2


# activity_id -> its caption, per class (the enum values of OCSF 1.8.0); 99 is "Other", and
# then the row names the activity itself.
OTHER: Final = 99


@dataclass(frozen=True, slots=True)
class Row:
    """How one event maps: ``activity`` is the activity_id (0 when the event decides it,
    e.g. control requests by their action), ``name`` the activity_name."""

    cls: OcsfClass
    activity: int
    name: str
    severity: Severity
    status: Status


_LC = OcsfClass.APPLICATION_LIFECYCLE
_API = OcsfClass.API_ACTIVITY
_LOG = OcsfClass.EVENT_LOG_ACTIVITY
_I, _L, _M, _H, _C = (
    Severity.INFORMATIONAL,
    Severity.LOW,
    Severity.MEDIUM,
    Severity.HIGH,
    Severity.CRITICAL,
)
_OK, _FAIL, _UNK = Status.SUCCESS, Status.FAILURE, Status.UNKNOWN

# fmt: off
MAPPING: Final[dict[EventName, Row]] = {
    EventName.PLUGIN_INSTALLED:         Row(_LC, 1, "Install", _I, _OK),
    EventName.PLUGIN_UPGRADED:          Row(_LC, 8, "Update", _I, _OK),
    EventName.PLUGIN_REMOVED:           Row(_LC, 2, "Remove", _I, _OK),
    EventName.PLUGIN_REJECTED:          Row(_LC, 1, "Install", _M, _FAIL),
    EventName.PLUGIN_FAILED:            Row(OcsfClass.APPLICATION_ERROR, 1, "General Error",
                                            _H, _FAIL),
    EventName.PLUGIN_RESTARTED:         Row(_LC, 5, "Restart", _L, _OK),
    EventName.PLUGIN_QUARANTINED:       Row(_LC, 7, "Disable", _H, _FAIL),
    EventName.PLUGIN_ROLLED_BACK:       Row(_LC, 8, "Update", _M, _FAIL),
    EventName.PLUGIN_PAUSED:            Row(_LC, OTHER, "Pause", _I, _OK),
    EventName.PLUGIN_RESUMED:           Row(_LC, OTHER, "Resume", _I, _OK),
    EventName.PLUGIN_RESET:             Row(_LC, OTHER, "Reset", _I, _OK),
    EventName.PLUGIN_STARTED:           Row(_LC, 3, "Start", _I, _OK),
    EventName.PLUGIN_STOPPED:           Row(_LC, 4, "Stop", _I, _OK),
    EventName.PLUGIN_CALLS:             Row(_API, OTHER, "Invoke", _I, _OK),
    EventName.PLUGIN_DOWNGRADE_ALLOWED: Row(_LC, OTHER, "Allow Downgrade", _L, _OK),
    EventName.PLUGIN_UNSIGNED_LOADED:   Row(_LC, 1, "Install", _M, _OK),
    EventName.PLUGIN_RETRY_ALLOWED:     Row(_LC, OTHER, "Retry", _L, _OK),
    EventName.PLUGIN_CONFIGURED:        Row(_LC, OTHER, "Configure", _I, _OK),
    EventName.PLUGIN_CONFIG_REFUSED:    Row(_LC, OTHER, "Configure", _M, _FAIL),
    EventName.PLUGIN_REVIEWED:          Row(_LC, OTHER, "Review", _I, _OK),
    EventName.HOSTCALL_DENIED:          Row(OcsfClass.DETECTION_FINDING, 1, "Create", _M, _OK),
    EventName.CONTROL_DENIED:           Row(_API, 0, "", _M, _FAIL),
    EventName.CONTROL_ACTION:           Row(_API, 0, "", _I, _OK),
    EventName.CONTROL_REQUESTED:        Row(_API, 0, "", _I, _UNK),
    EventName.DAEMON_STARTED:           Row(_LC, 3, "Start", _I, _OK),
    EventName.DAEMON_STOPPED:           Row(_LC, 4, "Stop", _I, _OK),
    EventName.DAEMON_RELOADED:          Row(_LC, OTHER, "Reload", _I, _OK),
    EventName.DAEMON_RELOAD_FAILED:     Row(_LC, OTHER, "Reload", _M, _FAIL),
    EventName.SOURCE_SYNCED:            Row(_LC, OTHER, "Sync", _I, _OK),
    EventName.SOURCE_FAILED:            Row(_LC, OTHER, "Sync", _M, _FAIL),
    EventName.CONFIG_INSECURE:          Row(OcsfClass.COMPLIANCE_FINDING, 1, "Create", _H, _OK),
    EventName.AUDIT_CHECKPOINT:         Row(_LOG, OTHER, "Checkpoint", _I, _OK),
    EventName.AUDIT_RECOVERED:          Row(_LOG, OTHER, "Recover", _M, _OK),
    EventName.AUDIT_ARCHIVED:           Row(_LOG, 4, "Archive", _L, _OK),
    EventName.AUDIT_KEY_ROTATED:        Row(_LOG, OTHER, "Rotate Key", _L, _OK),
    EventName.AUDIT_GAP:                Row(_LOG, 0, "", _C, _FAIL),
}
# fmt: on

# API Activity: the control action's activity (Create 1, Read 2, Update 3, Delete 4).
API_ACTIVITY: Final = {
    "install": (1, "Create"),
    "remove": (4, "Delete"),
    "list": (2, "Read"),
    "show": (2, "Read"),
    "audit_read": (2, "Read"),
    "audit_verify": (2, "Read"),
    "compliance_read": (2, "Read"),
}
API_UPDATE: Final = (3, "Update")  # pause, resume, restart, reset, retry, reload, invoke, …

# Event Log Activity for audit.gap, by its ``kind``: a log cut short or gone is Delete (2), a
# chain started over is Clear (1), a period the disk refused writes is Other (99).
GAP_ACTIVITY: Final = {
    "truncated": (2, "Delete"),
    "missing": (2, "Delete"),
    "new_chain": (1, "Clear"),
}
GAP_OTHER: Final = (OTHER, "Write Failed")
