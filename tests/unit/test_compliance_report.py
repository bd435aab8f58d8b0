"""Compliance evidence from a real audit log (temp dir, manual clock) and live plugin views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.audit_chain import VerifyResult, rfc3339
from forgeoned.core.clock import ManualClock
from forgeoned.core.compliance import ComplianceReport, build_report, render_json, render_markdown
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import PluginStats, PluginView
from forgeoned.errors import (
    LimitExceededError,
    MalformedModuleError,
    ManifestError,
    SignatureReason,
)

SHA1, SHA2, SHA3 = "11" * 32, "22" * 32, "33" * 32


def _history(tmp_path: Path) -> tuple[list[dict[str, Any]], VerifyResult, dict[str, float]]:
    clock = ManualClock()
    log = AuditLog(tmp_path, clock)
    marks: dict[str, float] = {}

    def at(mark: str, event: AuditEvent) -> None:
        clock.advance(60)
        marks[mark] = clock.wall()
        log.record(event)

    at("old", AuditEvent(EventName.PLUGIN_INSTALLED, plugin="old", version="0.1.0", sha256=SHA3))
    at(
        "install",
        AuditEvent(
            EventName.PLUGIN_INSTALLED,
            plugin="hello",
            version="1.0.0",
            sha256=SHA1,
            details={"signers": ["key-a"]},
        ),
    )
    at("removed", AuditEvent(EventName.PLUGIN_REMOVED, plugin="old", version="0.1.0"))
    at(
        "upgrade",
        AuditEvent(EventName.PLUGIN_UPGRADED, plugin="hello", version="1.1.0", sha256=SHA2),
    )
    at(
        "rejected",
        AuditEvent(
            EventName.PLUGIN_REJECTED,
            plugin="evil",
            version="6.6.6",
            reason="untrusted_key",
            message="signed by | an unknown key",
        ),
    )
    at(
        "denied",
        AuditEvent(EventName.HOSTCALL_DENIED, plugin="hello", reason="secrets", message="x"),
    )
    at(
        "ctl_denied",
        AuditEvent(EventName.CONTROL_DENIED, actor="uid:1000", reason="role_viewer"),
    )
    at("paused", AuditEvent(EventName.PLUGIN_PAUSED, plugin="hello", actor="uid:0"))
    at("failed", AuditEvent(EventName.PLUGIN_FAILED, plugin="hello", reason="out_of_fuel"))
    at("quarantined", AuditEvent(EventName.PLUGIN_QUARANTINED, plugin="hello", actor="supervisor"))
    entries = list(log.entries())
    result = log.verify()
    log.close()
    return entries, result, marks


def _views() -> list[PluginView]:
    return [PluginView("hello", "1.1.0", SHA2, "quarantined", 0, PluginStats(), ("key-b",))]


def test_report_lists_versions_with_signers_and_periods(tmp_path: Path) -> None:
    entries, result, marks = _history(tmp_path)
    report = build_report(entries, _views(), result, None, now=marks["quarantined"])
    periods = [(v.plugin, v.version, v.signers, v.active_until, v.how) for v in report.versions]
    assert periods == [
        ("hello", "1.0.0", ("key-a",), rfc3339(marks["upgrade"]), "installed"),
        ("hello", "1.1.0", ("key-b",), None, "upgraded"),  # signer from the live view
        ("old", "0.1.0", (), rfc3339(marks["removed"]), "installed"),
    ]
    assert report.versions[0].active_from == rfc3339(marks["install"])
    assert report.current[0]["state"] == "quarantined"
    assert report.generated_at == rfc3339(marks["quarantined"])


def test_report_collects_rejections_denials_failures_and_actors(tmp_path: Path) -> None:
    entries, result, _ = _history(tmp_path)
    report = build_report(entries, _views(), result)
    assert [(f.plugin, f.reason) for f in report.rejections] == [("evil", "untrusted_key")]
    assert [f.event for f in report.denials] == ["hostcall.denied", "control.denied"]
    assert [f.event for f in report.failures] == ["plugin.failed", "plugin.quarantined"]
    actions = [(f.event, f.actor) for f in report.operator_actions]
    assert actions == [("control.denied", "uid:1000"), ("plugin.paused", "uid:0")]
    assert report.chain["ok"] is True
    assert {c.status for c in report.controls} == {"evidenced"}
    frameworks = {(c.framework, c.control) for c in report.controls}
    assert {("SOC 2", "CC6.1"), ("SOC 2", "CC7.2"), ("ISO 27001", "A.9.4.1")} <= frameworks
    assert {("ISO 27001", "A.12.4.2"), ("GDPR", "Art. 30"), ("GDPR", "Art. 32")} <= frameworks


def test_since_limits_findings_but_keeps_versions_still_running(tmp_path: Path) -> None:
    entries, result, marks = _history(tmp_path)
    report = build_report(entries, _views(), result, since=marks["rejected"])
    assert [(v.plugin, v.version) for v in report.versions] == [("hello", "1.1.0")]
    assert report.rejections[0].plugin == "evil"
    assert report.period_start == rfc3339(marks["rejected"])
    assert "plugin.installed" not in report.event_counts


def test_broken_chain_fails_every_control_and_says_so(tmp_path: Path) -> None:
    entries, _, _ = _history(tmp_path)
    broken = VerifyResult(False, 4, 5, "content does not match its hash (edited)")
    report = build_report(entries, _views(), broken)
    assert {c.status for c in report.controls} == {"failed"}
    text = render_markdown(report)
    assert "**The hash chain does NOT verify**: first bad entry 5" in text


def test_unsigned_loads_are_exceptions(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.record(
        AuditEvent(EventName.PLUGIN_UNSIGNED_LOADED, plugin="dev", version="0.0.1", sha256=SHA1)
    )
    log.record(AuditEvent(EventName.PLUGIN_INSTALLED, plugin="dev", version="0.0.1", sha256=SHA1))
    report = build_report(list(log.entries()), [], log.verify())
    assert report.versions[0].unsigned is True
    status = {c.control: c.status for c in report.controls}
    assert status["CC6.8"] == "exceptions"
    assert status["A.12.4.3"] == "evidenced"
    assert [f.event for f in report.exceptions] == ["plugin.unsigned_loaded"]
    assert "0.0.1 (UNSIGNED)" in render_markdown(report)
    log.close()


def test_renderings(tmp_path: Path) -> None:
    entries, result, _ = _history(tmp_path)
    report = build_report(entries, _views(), result)
    data = json.loads(render_json(report))
    assert data["chain"]["ok"] is True
    assert data["versions"][0]["signers"] == ["key-a"]
    assert len(data["controls"]) == len(report.controls)
    text = render_markdown(report)
    for heading in (
        "## Audit log integrity",
        "## Controls",
        "## Plugin versions that ran (3)",
        "## Rejected artifacts (1)",
        "## Operator actions (2)",
    ):
        assert heading in text
    assert "signed by \\| an unknown key" in text  # table cells escape pipes
    assert "| SOC 2 | CC6.1 |" in text


def test_empty_log_still_renders() -> None:
    report = build_report([], [], VerifyResult(True, 0))
    assert report.versions == () and report.period_start is None
    assert "no entries" in render_markdown(report)


def test_a_rolled_back_version_never_shows_as_running_and_throttled_denials_add_up(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    log = AuditLog(tmp_path, clock)
    for event in (
        AuditEvent(EventName.PLUGIN_INSTALLED, plugin="hello", version="1.0.0", sha256=SHA1),
        AuditEvent(
            EventName.PLUGIN_ROLLED_BACK,
            plugin="hello",
            version="2.0.0",
            sha256=SHA2,
            reason="init_failed",
            details={"serving": {"version": "1.0.0", "sha256": SHA1}},
        ),
        AuditEvent(EventName.HOSTCALL_DENIED, plugin="hello", reason="denied"),
        # a throttle summary: 25 denials counted but not audited one by one
        AuditEvent(
            EventName.HOSTCALL_DENIED,
            plugin="hello",
            reason="denied",
            details={"function": "env_get", "suppressed": 25, "window_s": 60.0},
        ),
    ):
        clock.advance(60)
        log.record(event)
    entries = list(log.entries())
    result = log.verify()
    log.close()
    views = [PluginView("hello", "1.0.0", SHA1, "running", 0, PluginStats(), ("key-a",))]
    report = build_report(entries, views, result, None, now=clock.wall())
    assert [(v.version, v.active_until) for v in report.versions] == [("1.0.0", None)]
    assert any(f.event == "plugin.rolled_back" for f in report.failures)
    evidence = json.dumps(json.loads(render_json(report))["controls"])
    assert "26 host calls denied by capability" in evidence


def _rejections(tmp_path: Path, reasons: list[str]) -> ComplianceReport:
    clock = ManualClock()
    log = AuditLog(tmp_path, clock)
    for i, reason in enumerate(reasons):
        clock.advance(1)
        log.record(
            AuditEvent(EventName.PLUGIN_REJECTED, plugin=f"p{i}", version="1.0.0", reason=reason)
        )
    report = build_report(list(log.entries()), [], log.verify())
    log.close()
    return report


def _rejection_line(report: ComplianceReport) -> str:
    lines = {line for c in report.controls for line in c.evidence if "artifacts rejected" in line}
    assert len(lines) == 1
    return lines.pop()


def test_the_six_reported_signature_reasons_all_count_as_signature_rejections(
    tmp_path: Path,
) -> None:
    reasons = ["tampered", "expired", "out_of_scope", "threshold_not_met", "ambiguous", "unsigned"]
    report = _rejections(tmp_path, reasons)
    assert _rejection_line(report) == "6 artifacts rejected (6 for their signature)"


def test_every_signature_reason_counts_and_nothing_else_does(tmp_path: Path) -> None:
    signature = [r.value for r in SignatureReason]
    other = [ManifestError.reason, MalformedModuleError.reason, LimitExceededError.reason]
    report = _rejections(tmp_path, signature + other)
    total = len(signature) + len(other)
    assert (
        _rejection_line(report)
        == f"{total} artifacts rejected ({len(signature)} for their signature)"
    )


def test_sections_list_the_most_recent_findings_and_count_the_rest(tmp_path: Path) -> None:
    def denials() -> Any:  # a generator: the report reads its entries once, in order
        for seq in range(1, 26):
            yield {"seq": seq, "ts": rfc3339(1.7e9 + seq), "event": "hostcall.denied",
                   "plugin": "p", "reason": "capability"}  # fmt: skip

    report = build_report(denials(), [], VerifyResult(True, 25), max_findings=10)
    assert [f.seq for f in report.denials] == list(range(16, 26))
    assert report.omitted == {"denials": 15}
    assert report.event_counts == {"hostcall.denied": 25}
    text = render_markdown(report)
    assert "## Denials (25)" in text
    assert "The 10 most recent are listed; 15 earlier ones are counted" in text
    evidence = json.dumps(json.loads(render_json(report))["controls"])
    assert "25 host calls denied by capability" in evidence


def test_a_rejection_without_a_readable_manifest_is_named_by_its_file(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, ManualClock())
    log.record(
        AuditEvent(
            EventName.PLUGIN_REJECTED,
            reason="malformed",
            message="junk.wasm: not wasm",
            details={"file": "junk.wasm"},
        )
    )
    log.record(
        AuditEvent(
            EventName.PLUGIN_REJECTED,
            plugin="hello",
            version="1.0.0",
            reason="unsigned",
            message="hello.wasm: module is not signed",
            details={"file": "hello.wasm", "manifest": "unverified"},
        )
    )
    report = build_report(list(log.entries()), [], log.verify())
    log.close()
    assert [(f.subject, f.file) for f in report.rejections] == [
        ("(file junk.wasm)", "junk.wasm"),
        ("hello", "hello.wasm"),
    ]
    text = render_markdown(report)
    assert "| rejected | (file junk.wasm) |" in text.replace("plugin.rejected", "rejected")
