"""``control.denied`` is throttled per caller like denied host calls: the issue's 500 refused
requests with a 16 KB target, from one unprivileged caller, through the real dispatcher into a
real audit log."""

from __future__ import annotations

from pathlib import Path

from control_fakes import FakeBackend

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.control.dispatch import Dispatcher
from forgeoned.adapters.control.http import Request
from forgeoned.adapters.control.parser import parse_request
from forgeoned.adapters.control.verdict import BodyCaps
from forgeoned.core.clock import ManualClock
from forgeoned.core.compliance import build_report
from forgeoned.core.policy import Caller, Policy
from forgeoned.core.stats import DaemonStats

CAPS = BodyCaps(1 << 20, 1 << 20, 1 << 16)
NOBODY = Caller(uid=65534, gid=65534, pid=7, user="nobody")
ALICE = Caller(uid=1000, gid=1000, pid=8, user="alice")


def _request(target: str) -> Request:
    return parse_request(f"POST {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 32 * 1024)


def test_500_refused_requests_make_a_bounded_number_of_small_entries(tmp_path: Path) -> None:
    clock = ManualClock()
    stats = DaemonStats()
    log = AuditLog(tmp_path, clock)
    start = sum(p.stat().st_size for p in tmp_path.glob("audit-*.jsonl"))
    trail = AuditTrail(log, None, stats)
    dispatcher = Dispatcher(FakeBackend(), trail, Policy(), CAPS, stats, clock)
    target = "/v1/plugins/hello/pause?" + "a" * 16_000
    for _ in range(500):
        assert dispatcher.handle(NOBODY, _request(target))[9:12] == b"403"  # type: ignore[index]
    assert dispatcher.handle(ALICE, _request(target))[9:12] == b"403"  # type: ignore[index]
    denied = [e for e in log.entries() if e["event"] == "control.denied"]
    assert len(denied) == 11  # nobody's first 10, alice's first
    assert all(len(e["details"]["path"]) <= 256 for e in denied)
    grown = sum(p.stat().st_size for p in tmp_path.glob("audit-*.jsonl")) - start
    assert grown < 16 * 1024  # was +7.7 MB
    assert stats.control_requests[("pause", "forbidden")] == 501  # every one counted

    clock.advance(61.0)  # the window is over: the next request of anyone writes the summary
    dispatcher.handle(ALICE, _request("/v1/reload"))  # alice's second denial
    summaries = [e for e in log.entries() if e.get("reason") == "throttled"]
    assert [(e["actor"], e["details"]["suppressed"]) for e in summaries] == [
        ("uid=65534(nobody)", 490)
    ]
    report = build_report(log.entries(), [], log.verify())
    assert any("502 control requests denied" in line for c in report.controls
               for line in c.evidence)  # fmt: skip
    seqs = [e["seq"] for e in log.entries()]
    dispatcher.close()  # nothing left over: alice stayed within her allowance
    assert [e["seq"] for e in log.entries()] == seqs
    log.close()


def test_closing_reports_what_is_still_counted(tmp_path: Path) -> None:
    clock = ManualClock()
    with AuditLog(tmp_path, clock) as log:
        trail = AuditTrail(log, None, DaemonStats())
        dispatcher = Dispatcher(FakeBackend(), trail, Policy(), CAPS, None, clock)
        for _ in range(15):
            dispatcher.handle(NOBODY, _request("/v1/reload"))
        dispatcher.close()
        denied = [e for e in log.entries() if e["event"] == "control.denied"]
        assert [e["details"].get("suppressed") for e in denied] == [None] * 10 + [5]
