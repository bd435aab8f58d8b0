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
from typing import Any

from forgeoned.core.audit_chain import VerifyResult, parse_rfc3339, rfc3339
from forgeoned.core.compliance_controls import ControlEvidence, Facts, map_controls
from forgeoned.core.compliance_render import render_json, render_markdown
from forgeoned.core.compliance_scan import DEFAULT_MAX_FINDINGS, Finding, Scan
from forgeoned.core.stats import PluginView

__all__ = [
    "ComplianceReport",
    "ControlEvidence",
    "Finding",
    "VersionPeriod",
    "build_report",
    "render_json",
    "render_markdown",
]


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
    # per section, findings counted but not listed (only the most recent ones are kept)
    omitted: dict[str, int] = field(default_factory=dict)
    staging: tuple[Mapping[str, Any], ...] = ()  # per plugin: its staging evidence
    reviews_overdue: tuple[Mapping[str, Any], ...] = ()  # with incidents since last review


def build_report(
    entries: Iterable[Mapping[str, Any]],
    views: Sequence[PluginView],
    verify_result: VerifyResult | Mapping[str, Any],
    since: float | None = None,
    *,
    now: float | None = None,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    staging: Sequence[Mapping[str, Any]] = (),
    reviews_overdue: Sequence[Mapping[str, Any]] = (),
) -> ComplianceReport:
    """Evidence from ``entries`` (audit log order, read once) at or after ``since`` and the
    live ``views``; each section lists at most ``max_findings`` findings, the most recent."""
    scan = Scan(since, max_findings)
    for entry in entries:
        scan.add(entry)
    chain = (
        verify_result.to_dict() if isinstance(verify_result, VerifyResult) else dict(verify_result)
    )
    versions = _versions(scan.finish(), views, since)
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
    counts = scan.counts
    facts = Facts(
        entries=scan.in_scope,
        versions=len(versions),
        signed_versions=sum(1 for v in versions if v.signers),
        unsigned_loads=counts.get("plugin.unsigned_loaded", 0),
        downgrades=counts.get("plugin.downgrade_allowed", 0),
        rejections=scan.totals["rejections"],
        signature_rejections=scan.signature_rejections,
        hostcall_denials=counts.get("hostcall.denied", 0) + scan.suppressed_denials,
        control_denials=counts.get("control.denied", 0) + scan.suppressed_control,
        failures=counts.get("plugin.failed", 0),
        quarantines=counts.get("plugin.quarantined", 0),
        rollbacks=counts.get("plugin.rolled_back", 0),
        operator_actions=scan.totals["operator"],
        recoveries=counts.get("audit.recovered", 0),
    )
    sections = {k: tuple(v) for k, v in scan.sections.items()}
    return ComplianceReport(
        generated_at=rfc3339(now) if now is not None else "",
        since=rfc3339(since) if since is not None else None,
        period_start=scan.first_ts,
        period_end=scan.last_ts,
        chain=chain,
        versions=versions,
        current=current,
        rejections=sections["rejections"],
        denials=sections["denials"],
        failures=sections["failures"],
        operator_actions=sections["operator"],
        exceptions=sections["exceptions"],
        controls=map_controls(chain, facts),
        event_counts=dict(sorted(counts.items())),
        omitted=scan.omitted(),
        staging=tuple(staging),
        reviews_overdue=tuple(reviews_overdue),
    )


def _versions(
    periods: list[dict[str, Any]], views: Sequence[PluginView], since: float | None
) -> tuple[VersionPeriod, ...]:
    """The periods that overlap ``since``; a version running now without recorded signers
    takes them from the live view."""
    live = {v.name: v for v in views}
    out: list[VersionPeriod] = []
    for period in periods:
        if not _overlaps(period["active_until"], since):
            continue
        view = live.get(period["plugin"])
        signers = period["signers"]
        if not signers and view is not None and view.sha256 == period["sha256"]:
            signers = view.signers
        out.append(VersionPeriod(**{**period, "signers": signers}))
    return tuple(sorted(out, key=lambda p: (p.plugin, p.active_from)))


def _overlaps(until: str | None, since: float | None) -> bool:
    if until is None or since is None:
        return True
    try:
        return parse_rfc3339(until) >= since
    except ValueError:
        return True
