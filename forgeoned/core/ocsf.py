"""One stored audit entry as an OCSF 1.8.0 event (``forgeonectl audit export --format ocsf``).

Every record carries, besides its class's own attributes, the chain fields in places the base
schema has for them (no extension): ``metadata.uid`` is the entry's ``hash``,
``metadata.sequence`` its ``seq``, ``metadata.tags`` holds ``prev_hash`` (and the event name
and reason), ``metadata.original_time`` the stored ``ts``. ``metadata.product`` names forgeoned
and its version, ``metadata.version`` the OCSF version. What has no OCSF attribute (the
``details`` of an entry) goes to ``unmapped`` unchanged, so nothing of the entry is lost.
Pure: the caller passes the product version.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any, Final

from forgeoned.core.audit_chain import parse_rfc3339
from forgeoned.core.events import EventName
from forgeoned.core.ocsf_map import (
    API_ACTIVITY,
    API_UPDATE,
    GAP_ACTIVITY,
    GAP_OTHER,
    MAPPING,
    OCSF_VERSION,
    OcsfClass,
    Row,
    Severity,
    Status,
)

PRODUCT_NAME: Final = "forgeoned"
_ACTOR: Final = re.compile(r"^uid=(\d+)(?:\((.*)\))?$")
_SEVERITY_CAPTION: Final = {
    Severity.INFORMATIONAL: "Informational",
    Severity.LOW: "Low",
    Severity.MEDIUM: "Medium",
    Severity.HIGH: "High",
    Severity.CRITICAL: "Critical",
}
_STATUS_CAPTION: Final = {Status.UNKNOWN: "Unknown", Status.SUCCESS: "Success",
                          Status.FAILURE: "Failure"}  # fmt: skip
_FINDING_NEW: Final = (1, "New")  # status_id of a finding just created


def to_ocsf(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    """The OCSF event for one stored entry; ValueError for an unknown event or a bad ``ts``."""
    label = str(entry.get("event", ""))
    name = EventName.from_label(label)
    row = MAPPING[name]
    activity_id, activity_name = _activity(row, entry)
    cls = row.cls
    out: dict[str, Any] = {
        "category_uid": cls.category_uid,
        "category_name": cls.category_name,
        "class_uid": cls.uid,
        "class_name": cls.caption,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": cls.uid * 100 + activity_id,
        "type_name": f"{cls.caption}: {activity_name}",
        "severity_id": int(row.severity),
        "severity": _SEVERITY_CAPTION[row.severity],
        "time": round(parse_rfc3339(str(entry["ts"])) * 1000),
        "timezone_offset": 0,
        "message": _message(entry),
        "metadata": _metadata(entry, product_version),
    }
    status = _status(row, entry)
    if cls in (OcsfClass.DETECTION_FINDING, OcsfClass.COMPLIANCE_FINDING):
        out["status_id"], out["status"] = _FINDING_NEW
    else:
        out["status_id"], out["status"] = int(status), _STATUS_CAPTION[status]
    if entry.get("reason"):
        out["status_code"] = str(entry["reason"])
    actor = _actor(entry.get("actor"))
    if actor is not None:
        out["actor"] = actor
    out.update(_CLASS_PARTS[cls](entry, product_version))
    unmapped = {k: entry[k] for k in ("details",) if entry.get(k)}
    if unmapped:
        out["unmapped"] = unmapped
    return out


def _activity(row: Row, entry: Mapping[str, Any]) -> tuple[int, str]:
    if row.activity:
        return row.activity, row.name
    details = entry.get("details")
    details = details if isinstance(details, Mapping) else {}
    if row.cls is OcsfClass.API_ACTIVITY:
        return API_ACTIVITY.get(str(details.get("action", "")), API_UPDATE)
    kind = str(details.get("kind") or entry.get("reason") or "")
    return GAP_ACTIVITY.get(kind, GAP_OTHER)


def _status(row: Row, entry: Mapping[str, Any]) -> Status:
    """control.action, plugin.calls and daemon.stopped carry their outcome in ``reason``."""
    reason = entry.get("reason")
    counted = (EventName.CONTROL_ACTION.label, EventName.PLUGIN_CALLS.label)
    if entry.get("event") in counted and reason not in (None, "ok"):
        return Status.FAILURE
    if entry.get("event") == EventName.DAEMON_STOPPED.label and reason:
        return Status.FAILURE
    return row.status


def _message(entry: Mapping[str, Any]) -> str:
    who = " ".join(str(entry[k]) for k in ("plugin", "version") if entry.get(k))
    text = entry.get("message") or entry.get("reason") or ""
    return ": ".join(str(p) for p in (entry.get("event", ""), who, text) if p)


def _metadata(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    tags = [{"name": "prev_hash", "value": str(entry.get("prev_hash", ""))},
            {"name": "event", "value": str(entry.get("event", ""))}]  # fmt: skip
    if entry.get("reason"):
        tags.append({"name": "reason", "value": str(entry["reason"])})
    return {
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT_NAME, "vendor_name": PRODUCT_NAME, "version": product_version},
        "uid": str(entry.get("hash", "")),
        "sequence": int(entry.get("seq", 0)),
        "original_time": str(entry.get("ts", "")),
        "event_code": str(entry.get("event", "")),
        "log_name": "audit",
        "log_provider": PRODUCT_NAME,
        "profiles": ["host"],  # for ``actor`` (and ``device``, which a shipper may add)
        "tags": tags,
    }


def _actor(actor: Any) -> dict[str, Any] | None:
    """``uid=1000(alice)`` is a user; anything else (``forgeoned``, ``supervisor``) the app."""
    if not actor:
        return None
    match = _ACTOR.match(str(actor))
    if match is None:
        return {"app_name": str(actor)}
    user: dict[str, Any] = {"uid": match.group(1)}
    if match.group(2):
        user["name"] = match.group(2)
    return {"user": user}


def _app(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    """The plugin (or, for a file rejected before its name was known, the file); the daemon
    itself for ``daemon.*``."""
    details = entry.get("details")
    file = details.get("file") if isinstance(details, Mapping) else None
    if entry.get("plugin") or str(entry.get("event", "")).startswith("plugin."):
        app: dict[str, Any] = {"name": str(entry.get("plugin") or file or "unknown")}
        if entry.get("version"):
            app["version"] = str(entry["version"])
        if entry.get("sha256"):
            app["uid"] = str(entry["sha256"])
        if file:
            app["path"] = str(file)
        return app
    return {"name": PRODUCT_NAME, "vendor_name": PRODUCT_NAME, "version": product_version}


def _lifecycle(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    return {"app": _app(entry, product_version)}


def _error(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    return {"status_detail": str(entry.get("message") or entry.get("reason") or "")}


def _resource(entry: Mapping[str, Any]) -> dict[str, Any]:
    kind = "WebAssembly plugin" if entry.get("plugin") else "daemon"
    res: dict[str, Any] = {"name": str(entry.get("plugin") or PRODUCT_NAME), "type": kind}
    if entry.get("version"):
        res["version"] = str(entry["version"])
    if entry.get("sha256"):
        res["uid"] = str(entry["sha256"])
    return res


def _finding_info(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "uid": str(entry.get("hash", "")),
        "title": str(entry.get("message") or entry.get("event", "")),
        "types": [str(entry.get("event", ""))],
        "created_time": round(parse_rfc3339(str(entry["ts"])) * 1000),
    }


def _detection(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    details = entry.get("details")
    details = details if isinstance(details, Mapping) else {}
    evidence: dict[str, Any] = {"api": {"operation": str(details.get("function", "unknown"))}}
    if details:
        evidence["data"] = dict(details)
    return {
        "finding_info": _finding_info(entry),
        "resources": [_resource(entry)],
        "evidences": [evidence],
    }


def _compliance(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    return {
        "finding_info": _finding_info(entry),
        "compliance": {
            "control": "forgeoned StrictModes",
            "status_id": 3,
            "status": "Fail",
            "status_detail": str(entry.get("message", "")),
        },
        "resources": [_resource(entry)],
    }


def _api(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    details = entry.get("details")
    details = details if isinstance(details, Mapping) else {}
    actor: dict[str, Any] = _actor(entry.get("actor")) or {"app_name": "unknown"}
    if isinstance(details.get("pid"), int):
        actor["process"] = {"pid": details["pid"]}
    api: dict[str, Any] = {
        "operation": str(details.get("action") or details.get("function") or "unknown"),
        "service": {"name": "forgeoned control API"},
    }
    out: dict[str, Any] = {
        "actor": actor,
        "api": api,
        "src_endpoint": {"name": "local", "svc_name": "forgeoned-control"},
    }
    method = details.get("method")
    path = details.get("path")
    if isinstance(method, str) and isinstance(path, str):
        request: dict[str, Any] = {"url": {"path": path}}
        if method in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"):
            request["http_method"] = method
        out["http_request"] = request
    if entry.get("plugin"):
        out["resources"] = [_resource(entry)]
    if isinstance(details.get("count"), int):  # plugin.calls: a summary of an interval
        out["count"] = details["count"]
        for field, key in (("start_time", "first"), ("end_time", "last")):
            with contextlib.suppress(ValueError, TypeError):
                out[field] = round(parse_rfc3339(str(details[key])) * 1000)
    return out


def _event_log(entry: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    return {
        "log_name": "audit",
        "log_provider": PRODUCT_NAME,
        "log_type": "Application",
        "log_type_id": 2,
    }


_CLASS_PARTS: Final = {
    OcsfClass.APPLICATION_LIFECYCLE: _lifecycle,
    OcsfClass.APPLICATION_ERROR: _error,
    OcsfClass.DETECTION_FINDING: _detection,
    OcsfClass.COMPLIANCE_FINDING: _compliance,
    OcsfClass.API_ACTIVITY: _api,
    OcsfClass.EVENT_LOG_ACTIVITY: _event_log,
}
