"""The live records of ``audit follow --calls`` as OCSF 1.8.0 events.

A ``plugin.call`` record (one invoke) and a ``plugin.calls.dropped`` marker (records a slow
follower lost) are API Activity (6003) events, "Invoke", like the chained ``plugin.calls``
summaries they stand beside (:mod:`forgeoned.core.ocsf`). They are not audit entries: they
carry no ``metadata.uid`` (hash) and no ``metadata.sequence``, so a SIEM can tell them from
the chained entries, and ``metadata.event_code`` names them. A marker has ``count`` (the
records lost) and status Failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from forgeoned.core.events import EventName
from forgeoned.core.ocsf import to_ocsf

CALL_EVENT: Final = "plugin.call"
DROPPED_EVENT: Final = "plugin.calls.dropped"


def live_to_ocsf(record: Mapping[str, Any], product_version: str) -> dict[str, Any]:
    """The OCSF event of a live record (``plugin.call`` or ``plugin.calls.dropped``)."""
    label = str(record.get("event", ""))
    if label == DROPPED_EVENT:
        count = int(record.get("count", 0))
        record = {
            "ts": record["ts"],
            "reason": "dropped",
            "actor": "forgeoned",
            "message": f"{count} call records were dropped for this follower (not reading "
            "fast enough); the plugin.calls summaries count them",
            "details": {"count": count, "first": record["ts"], "last": record["ts"]},
        }
    elif label != CALL_EVENT:
        raise ValueError(f"not a live record: {label[:40]!r}")
    out = to_ocsf({**record, "event": EventName.PLUGIN_CALLS.label}, product_version)
    meta = out["metadata"]
    del meta["uid"], meta["sequence"]
    meta["event_code"] = label
    meta["log_name"] = "calls"
    meta["tags"] = [t for t in meta["tags"] if t["name"] != "prev_hash"]
    for tag in meta["tags"]:
        if tag["name"] == "event":
            tag["value"] = label
    out["message"] = out["message"].replace(EventName.PLUGIN_CALLS.label, label, 1)
    if label == DROPPED_EVENT:
        out["count"] = count
        out.pop("resources", None)
    return out
