"""Compliance evidence for auditors, built from the audit log and the live plugin state.

:func:`build_report` answers what an auditor asks of a plugin host: which plugins ran which
signed versions and when (with signer keys), every rejection, denial and failure, every
operator action with its actor, and whether the audit chain itself verifies. Each finding
set is then mapped to the controls forgeoned supports (SOC 2 CC6/CC7, ISO/IEC 27001:2013
Annex A.9/A.12, GDPR Art. 30/32). This is evidence for a control, not a certification: the
report says what the log shows and flags exceptions; judging sufficiency is the auditor's job.

Signer keys come from an event's ``details["signers"]`` (or ``signer``/``key_id``) and, for
the versions running now, from the live :class:`PluginView`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.audit_chain import CHECKPOINT_EVENT, VerifyResult, parse_rfc3339, rfc3339
from forgeoned.core.compliance_controls import ControlEvidence, Facts, map_controls
from forgeoned.core.compliance_render import render_json, render_markdown
from forgeoned.core.stats import PluginView
from forgeoned.errors import SignatureReason

# plugin.rolled_back is not an activation: the version it names failed to come up and the
# one already running kept serving (its period simply goes on).
ACTIVATING: Final = frozenset({"plugin.installed", "plugin.upgraded"})
ENDING: Final = frozenset({"plugin.removed"})
REJECTIONS: Final = frozenset({"plugin.rejected"})
DENIALS: Final = frozenset({"hostcall.denied", "control.denied"})
FAILURES: Final = frozenset({"plugin.failed", "plugin.quarantined", "plugin.rolled_back"})
EXCEPTIONS: Final = frozenset(
    {"plugin.unsigned_loaded", "plugin.downgrade_allowed", "audit.recovered"}
)
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
__all__ = [
    "ComplianceReport",
    "ControlEvidence",
    "Finding",
    "VersionPeriod",
    "build_report",
    "render_json",
    "render_markdown",
]
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


@dataclass(frozen=True, slots=True)
class VersionPeriod:
    """A plugin version that ran from ``active_from`` until ``active_until`` (None: still)."""

    plugin: str
    version: str
    sha256: str | None
    signers: tuple[str, ...]
    unsigned: bool
    active_from: str
    active_until: str | None
    how: str


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    generated_at: str
    since: str | None
    period_start: str | None
    period_end: str | None
    chain: dict[str, Any]
    versions: tuple[VersionPeriod, ...]
    current: tuple[dict[str, Any], ...]
    rejections: tuple[Finding, ...]
    denials: tuple[Finding, ...]
    failures: tuple[Finding, ...]
    operator_actions: tuple[Finding, ...]
    exceptions: tuple[Finding, ...]
    controls: tuple[ControlEvidence, ...]
    event_counts: dict[str, int] = field(default_factory=dict)
    staging: tuple[Mapping[str, Any], ...] = ()  # per plugin: its staging evidence
    reviews_overdue: tuple[Mapping[str, Any], ...] = ()  # with incidents since last review


def _finding(entry: Mapping[str, Any]) -> Finding:
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


def _signers(entry: Mapping[str, Any]) -> tuple[str, ...]:
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
    """Denials a throttled ``hostcall.denied`` summary stands for (its own entry excluded:
    a summary is not itself a denial, so it counts ``suppressed - 1`` on top of the 1)."""
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


def _overlaps(until: str | None, since: float | None) -> bool:
    if until is None or since is None:
        return True
    try:
        return parse_rfc3339(until) >= since
    except ValueError:
        return True


def build_report(
    entries: Iterable[Mapping[str, Any]],
    views: Sequence[PluginView],
    verify_result: VerifyResult | Mapping[str, Any],
    since: float | None = None,
    *,
    now: float | None = None,
    staging: Sequence[Mapping[str, Any]] = (),
    reviews_overdue: Sequence[Mapping[str, Any]] = (),
) -> ComplianceReport:
    """Evidence from ``entries`` (audit log order) at or after ``since`` and the live ``views``."""
    everything = list(entries)
    chosen = [e for e in everything if _in_scope(e, since)]
    chain = (
        verify_result.to_dict() if isinstance(verify_result, VerifyResult) else dict(verify_result)
    )
    # periods come from the whole log, so a version activated before ``since`` that still
    # ran during the period is listed too
    versions = tuple(p for p in _versions(everything, views) if _overlaps(p.active_until, since))
    buckets: dict[str, list[Finding]] = {
        k: [] for k in ("rejections", "denials", "failures", "operator", "exceptions")
    }
    counts: dict[str, int] = {}
    suppressed_denials = 0
    for entry in chosen:
        event = str(entry.get("event", ""))
        counts[event] = counts.get(event, 0) + 1
        if event == "hostcall.denied":
            suppressed_denials += _suppressed(entry)
        for key, names in (
            ("rejections", REJECTIONS),
            ("denials", DENIALS),
            ("failures", FAILURES),
            ("exceptions", EXCEPTIONS),
        ):
            if event in names:
                buckets[key].append(_finding(entry))
        if event != CHECKPOINT_EVENT and _is_operator(entry):
            buckets["operator"].append(_finding(entry))
    current = tuple(
        {
            "plugin": v.name,
            "version": v.version,
            "sha256": v.sha256,
            "state": v.state,
            "signers": list(v.signers),
        }
        for v in sorted(views, key=lambda v: v.name)
    )
    facts = Facts(
        entries=len(chosen),
        versions=len(versions),
        signed_versions=sum(1 for v in versions if v.signers),
        unsigned_loads=counts.get("plugin.unsigned_loaded", 0),
        downgrades=counts.get("plugin.downgrade_allowed", 0),
        rejections=len(buckets["rejections"]),
        signature_rejections=sum(1 for f in buckets["rejections"] if f.reason in SIGNATURE_REASONS),
        hostcall_denials=counts.get("hostcall.denied", 0) + suppressed_denials,
        control_denials=counts.get("control.denied", 0),
        failures=counts.get("plugin.failed", 0),
        quarantines=counts.get("plugin.quarantined", 0),
        rollbacks=counts.get("plugin.rolled_back", 0),
        operator_actions=len(buckets["operator"]),
        recoveries=counts.get("audit.recovered", 0),
    )
    controls = map_controls(chain, facts)
    return ComplianceReport(
        generated_at=rfc3339(now) if now is not None else "",
        since=rfc3339(since) if since is not None else None,
        period_start=str(chosen[0].get("ts")) if chosen else None,
        period_end=str(chosen[-1].get("ts")) if chosen else None,
        chain=chain,
        versions=versions,
        current=current,
        rejections=tuple(buckets["rejections"]),
        denials=tuple(buckets["denials"]),
        failures=tuple(buckets["failures"]),
        operator_actions=tuple(buckets["operator"]),
        exceptions=tuple(buckets["exceptions"]),
        controls=controls,
        event_counts=dict(sorted(counts.items())),
        staging=tuple(staging),
        reviews_overdue=tuple(reviews_overdue),
    )


def _versions(
    entries: list[Mapping[str, Any]], views: Sequence[PluginView]
) -> tuple[VersionPeriod, ...]:
    """Activation periods per plugin: a version runs until the next activation or removal."""
    live = {v.name: v for v in views}
    unsigned = {
        (e.get("plugin"), e.get("sha256"))
        for e in entries
        if e.get("event") == "plugin.unsigned_loaded"
    }
    open_period: dict[str, dict[str, Any]] = {}
    done: list[VersionPeriod] = []

    def close(plugin: str, until: str | None) -> None:
        period = open_period.pop(plugin, None)
        if period is not None:
            done.append(VersionPeriod(**period, active_until=until))

    for entry in entries:
        event, plugin = entry.get("event"), entry.get("plugin")
        if not isinstance(plugin, str):
            continue
        if event in ACTIVATING and entry.get("version"):
            close(plugin, str(entry.get("ts")))
            signers = _signers(entry)
            view = live.get(plugin)
            if not signers and view is not None and view.sha256 == entry.get("sha256"):
                signers = view.signers
            open_period[plugin] = {
                "plugin": plugin,
                "version": str(entry["version"]),
                "sha256": entry.get("sha256"),
                "signers": signers,
                "unsigned": (plugin, entry.get("sha256")) in unsigned,
                "active_from": str(entry.get("ts")),
                "how": str(event).removeprefix("plugin."),
            }
        elif event in ENDING:
            close(plugin, str(entry.get("ts")))
    for plugin in sorted(open_period):
        close(plugin, None)
    return tuple(sorted(done, key=lambda p: (p.plugin, p.active_from)))
