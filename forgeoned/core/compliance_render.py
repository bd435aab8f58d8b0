"""Rendering of a :class:`forgeoned.core.compliance.ComplianceReport` as Markdown or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forgeoned.core.compliance import ComplianceReport, Finding

_STATUS = {"evidenced": "evidenced", "exceptions": "EXCEPTIONS", "failed": "FAILED"}


def render_json(report: ComplianceReport) -> str:
    """The whole report as stable, indented JSON (newline-terminated)."""
    return json.dumps(asdict(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _findings(title: str, findings: tuple[Finding, ...], omitted: int, empty: str) -> list[str]:
    out = ["", f"## {title} ({len(findings) + omitted})", ""]
    if not findings:
        return [*out, empty]
    if omitted:
        out += [
            f"The {len(findings)} most recent are listed; {omitted} earlier ones are counted "
            "but not listed (`forgeonectl audit export` has them all).",
            "",
        ]
    rows = [
        [f.seq, f.ts, f.event, f.subject, f.version, f.actor, f.reason, f.message] for f in findings
    ]
    header = ["seq", "time (UTC)", "event", "plugin", "version", "actor", "reason", "message"]
    return out + _table(header, rows)


def _evidence_text(evidence: Any) -> str:
    if not isinstance(evidence, dict):
        return "none"
    keys = ("calls", "faults", "duration_s", "fuel_consumed", "memory_peak_bytes")
    return ", ".join(f"{k} {evidence[k]}" for k in keys if k in evidence)


def _staging(report: ComplianceReport) -> list[str]:
    out = ["", f"## Staging evidence ({len(report.staging)})", ""]
    out += _table(
        ["plugin", "version", "sha256", "evidence", "source"],
        [
            [s["plugin"], s["version"], s["sha256"], _evidence_text(s.get("evidence")),
             s.get("source", "NO STAGING EVIDENCE")]
            for s in report.staging
        ],
    )  # fmt: skip
    out += ["", f"## Reviews overdue ({len(report.reviews_overdue)})", ""]
    if not report.reviews_overdue:
        return [*out, "None."]
    out += _table(
        ["plugin", "due", "last review", "incidents since"],
        [
            [r["plugin"], r["due"], r["last_review"] or "never",
             "; ".join(f"{i['event']} {i['version'] or ''} {i['at']} ({i['reason']})"
                       for i in r["incidents"]) or "none"]
            for r in report.reviews_overdue
        ],
    )  # fmt: skip
    return out


def render_markdown(report: ComplianceReport) -> str:
    chain = report.chain
    period = (
        f"{report.period_start} to {report.period_end}" if report.period_start else "no entries"
    )
    out = [
        "# forgeoned compliance evidence",
        "",
        f"- Generated: {report.generated_at or 'n/a'}",
        f"- Since: {report.since or 'the start of the audit log'}",
        f"- Audit entries in scope: {sum(report.event_counts.values())} ({period})",
        "",
        "## Audit log integrity",
        "",
    ]
    if chain.get("ok"):
        out.append(
            f"The hash chain verifies: {chain.get('entries')} entries, "
            f"{chain.get('checkpoints_checked')} Ed25519-signed checkpoints checked."
        )
        if gaps := chain.get("gaps"):
            out.append(
                f"It records {len(gaps)} gap(s) (`audit.gap` at seq "
                f"{', '.join(str(seq) for seq in gaps)}): periods in which the log could not "
                "be written, with what was refused or lost."
            )
    else:
        out.append(
            f"**The hash chain does NOT verify**: first bad entry {chain.get('first_bad_seq')}"
            f" ({chain.get('why')}). Evidence below comes from a log that was altered."
        )
    out += ["", "## Controls", ""]
    out += _table(
        ["framework", "control", "what forgeoned provides", "status", "evidence"],
        [
            [c.framework, c.control, c.title, _STATUS[c.status], "; ".join(c.evidence)]
            for c in report.controls
        ],
    )
    out += ["", f"## Plugin versions that ran ({len(report.versions)})", ""]
    out += _table(
        ["plugin", "version", "sha256", "signer keys", "from", "until", "how"],
        [
            [
                v.plugin,
                v.version + (" (UNSIGNED)" if v.unsigned else ""),
                v.sha256,
                ", ".join(v.signers) or "not recorded",
                v.active_from,
                v.active_until or "still active",
                v.how,
            ]
            for v in report.versions
        ],
    )
    out += ["", "## Plugins now", ""]
    out += _table(
        ["plugin", "version", "state", "sha256", "signer keys"],
        [
            [p["plugin"], p["version"], p["state"], p["sha256"], ", ".join(p["signers"])]
            for p in report.current
        ],
    )
    out += _staging(report)
    left = report.omitted
    out += _findings(
        "Rejected artifacts", report.rejections, left.get("rejections", 0), "None in the period."
    )
    out += _findings("Denials", report.denials, left.get("denials", 0), "None in the period.")
    out += _findings(
        "Failures, quarantines and rollbacks", report.failures, left.get("failures", 0), "None."
    )
    out += _findings(
        "Operator actions", report.operator_actions, left.get("operator", 0), "None in the period."
    )
    out += _findings("Exceptions to review", report.exceptions, left.get("exceptions", 0), "None.")
    out += ["", "## Event counts", ""]
    out += _table(["event", "count"], [[k, v] for k, v in report.event_counts.items()])
    return "\n".join(out) + "\n"
