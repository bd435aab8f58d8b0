"""The JSON the control API shows of a plugin: :func:`summary` (each entry of
``GET /v1/plugins``, what ``forgeonectl status --json`` prints) and :func:`detail`
(``GET /v1/plugins/{name}``, and the body of a 201 install).

DESIGN §4 fixes ``name``, ``version``, ``state``, ``sha256``; the rest says what is wrong:
``candidates`` (versions that are not the active one: ``pending``, ``rejected``,
``rolled_back`` or ``failed``, newest first, with the ``reason`` code their audit event
carries, the text and the time), ``last_error`` (text) with its code and time, and
``quarantine`` (why). Times are ISO 8601 UTC strings such as ``2024-05-01T12:00:00.000Z``.
"""

from __future__ import annotations

import datetime
from typing import Any

from forgeoned.core.stats import CandidateView, PluginView


def iso_time(at: float | None) -> str | None:
    if at is None:
        return None
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _candidate(c: CandidateView) -> dict[str, Any]:
    return {
        "version": c.version,
        "sha256": c.sha256,
        "status": c.status.value,
        "reason": c.reason,
        "message": c.message,
        "at": iso_time(c.at),
        "file": c.file,
    }


def summary(view: PluginView) -> dict[str, Any]:
    q = view.quarantine
    quarantine = None
    if q is not None:
        quarantine = {
            "reason": q.reason,
            "message": q.message,
            "last_error": q.last_error,
            "at": iso_time(q.at),
        }
    return {
        "name": view.name,
        "version": view.version,
        "state": view.state,
        "sha256": view.sha256,
        "candidates": [_candidate(c) for c in view.candidates],
        "last_error": view.last_error,
        "last_error_code": view.last_error_code,
        "last_error_at": iso_time(view.last_error_at),
        "quarantine": quarantine,
    }


def detail(view: PluginView) -> dict[str, Any]:
    stats = view.stats
    return {
        **summary(view),
        "signers": list(view.signers),
        "limits": dict(view.limits),
        "capabilities": dict(view.capabilities),
        "instances": view.instances,
        "memory_bytes": view.memory_bytes,
        "counters": {
            "calls": [
                {"export": export, "outcome": outcome, "count": n}
                for (export, outcome), n in sorted(stats.calls.items())
            ],
            "hostcalls": [
                {"function": function, "outcome": outcome, "count": n}
                for (function, outcome), n in sorted(stats.hostcalls.items())
            ],
            "fuel_consumed": stats.fuel_consumed,
            "restarts": stats.restarts,
            "log_dropped": stats.log_dropped,
        },
    }
