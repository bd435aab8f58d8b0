"""One pass over the audit log for the compliance report, in memory independent of its size.

Entries are read once, in order, and never kept: each is counted and, if an auditor looks at
it individually, kept as a :class:`Finding` among the ``max_findings`` most recent of its
section (the others only counted: the report says how many it leaves out and the full list is
one ``forgeonectl audit export`` away). Version periods come from the whole log, so a version
activated before ``since`` that still ran during the period is listed too.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from forgeoned.core.audit_chain import CHECKPOINT_EVENT, parse_rfc3339
from forgeoned.errors import SignatureReason

DEFAULT_MAX_FINDINGS: Final = 1000
ACTIVATING: Final = frozenset({"plugin.installed", "plugin.upgraded"})
ENDING: Final = frozenset({"plugin.removed"})
SECTIONS: Final = {
    "rejections": frozenset({"plugin.rejected"}),
    "denials": frozenset({"hostcall.denied", "control.denied"}),
    "failures": frozenset({"plugin.failed", "plugin.quarantined", "plugin.rolled_back"}),
    "exceptions": frozenset(
        {"plugin.unsigned_loaded", "plugin.downgrade_allowed", "audit.recovered"}
    ),
}
OPERATOR_EVENTS: Final = frozenset(
    {
        "control.action",
        "plugin.paused",
        "plugin.resumed",
        "plugin.reset",
        "plugin.downgrade_allowed",
        "daemon.reloaded",
        "daemon.reload_failed",
    }
)
SYSTEM_ACTORS: Final = frozenset({"forgeoned", "daemon", "supervisor", "system", "watcher"})
SIGNATURE_REASONS: Final = frozenset(r.value for r in SignatureReason)


@dataclass(frozen=True, slots=True)
class Finding:
    """One audit entry that an auditor looks at individually."""

    seq: int
    ts: str
    event: str
    plugin: str | None
    version: str | None
    actor: str | None
    reason: str | None
    message: str
    file: str | None = None  # the artifact file a rejection names

    @property
    def subject(self) -> str | None:
        """The plugin, or for a file whose manifest could not be read, the file."""
        return self.plugin or (f"(file {self.file})" if self.file else None)


def finding(entry: Mapping[str, Any]) -> Finding:
    details = entry.get("details")
    file = details.get("file") if isinstance(details, Mapping) else None
    return Finding(
        seq=int(entry.get("seq", 0)),
        ts=str(entry.get("ts", "")),
        event=str(entry.get("event", "")),
        plugin=entry.get("plugin"),
        version=entry.get("version"),
        actor=entry.get("actor"),
        reason=entry.get("reason"),
        message=str(entry.get("message", "")),
        file=str(file) if file else None,
    )


class Scan:
    """Feed entries with :meth:`add`; read the sections, counts and periods afterwards."""

    def __init__(self, since: float | None, max_findings: int = DEFAULT_MAX_FINDINGS) -> None:
        self.since = since
        keys = (*SECTIONS, "operator")
        self.sections: dict[str, collections.deque[Finding]] = {
            k: collections.deque(maxlen=max_findings) for k in keys
        }
        self.totals: dict[str, int] = dict.fromkeys(keys, 0)
        self.counts: dict[str, int] = {}
        self.in_scope = 0
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.signature_rejections = 0
        self.suppressed_denials = 0
        self.suppressed_control = 0
        self.open_periods: dict[str, dict[str, Any]] = {}
        self.periods: list[dict[str, Any]] = []
        self.unsigned: set[tuple[Any, Any]] = set()

    def add(self, entry: Mapping[str, Any]) -> None:
        self._period(entry)
        if not _in_scope(entry, self.since):
            return
        event = str(entry.get("event", ""))
        self.in_scope += 1
        self.first_ts = self.first_ts or str(entry.get("ts"))
        self.last_ts = str(entry.get("ts"))
        self.counts[event] = self.counts.get(event, 0) + 1
        if event == "hostcall.denied":
            self.suppressed_denials += _suppressed(entry)
        elif event == "control.denied":
            self.suppressed_control += _suppressed(entry)
        for key, names in SECTIONS.items():
            if event in names:
                self._keep(key, entry)
        if event == "plugin.rejected" and entry.get("reason") in SIGNATURE_REASONS:
            self.signature_rejections += 1
        if event not in (CHECKPOINT_EVENT, "plugin.calls") and _is_operator(entry):
            self._keep("operator", entry)

    def omitted(self) -> dict[str, int]:
        """Per section, how many findings are counted but not listed."""
        out = {k: self.totals[k] - len(v) for k, v in self.sections.items()}
        return {k: n for k, n in out.items() if n}

    def finish(self) -> list[dict[str, Any]]:
        """Close the periods still open (the versions running now); all periods, unsorted."""
        for plugin in sorted(self.open_periods):
            self._close(plugin, None)
        for period in self.periods:
            period["unsigned"] = (period["plugin"], period["sha256"]) in self.unsigned
        return self.periods

    def _keep(self, key: str, entry: Mapping[str, Any]) -> None:
        self.totals[key] += 1
        self.sections[key].append(finding(entry))

    def _period(self, entry: Mapping[str, Any]) -> None:
        event, plugin = entry.get("event"), entry.get("plugin")
        if event == "plugin.unsigned_loaded":
            self.unsigned.add((plugin, entry.get("sha256")))
        if not isinstance(plugin, str):
            return
        if event in ACTIVATING and entry.get("version"):
            self._close(plugin, str(entry.get("ts")))
            self.open_periods[plugin] = {
                "plugin": plugin,
                "version": str(entry["version"]),
                "sha256": entry.get("sha256"),
                "signers": signers(entry),
                "active_from": str(entry.get("ts")),
                "how": str(event).removeprefix("plugin."),
            }
        elif event in ENDING:
            self._close(plugin, str(entry.get("ts")))

    def _close(self, plugin: str, until: str | None) -> None:
        period = self.open_periods.pop(plugin, None)
        if period is not None:
            self.periods.append({**period, "active_until": until})


def signers(entry: Mapping[str, Any]) -> tuple[str, ...]:
    details = entry.get("details") or {}
    if not isinstance(details, Mapping):
        return ()
    value = details.get("signers", details.get("signer", details.get("key_id")))
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


def _suppressed(entry: Mapping[str, Any]) -> int:
    """Denials a throttled summary stands for (its own entry excluded: a summary is not itself
    a denial, so it counts ``suppressed - 1`` on top of the 1)."""
    details = entry.get("details") or {}
    if not isinstance(details, Mapping):
        return 0
    value = details.get("suppressed")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return 0
    return value - 1


def _is_operator(entry: Mapping[str, Any]) -> bool:
    actor = entry.get("actor")
    if entry.get("event") in OPERATOR_EVENTS:
        return True
    return actor is not None and actor not in SYSTEM_ACTORS


def _in_scope(entry: Mapping[str, Any], since: float | None) -> bool:
    if since is None:
        return True
    try:
        return parse_rfc3339(str(entry.get("ts", ""))) >= since
    except ValueError:
        return True  # an unreadable time is shown rather than hidden
