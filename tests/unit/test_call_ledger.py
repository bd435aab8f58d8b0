"""Plugin calls are audited as summaries: per caller, plugin, function and outcome, one entry
per interval, through the real dispatcher into a real audit log (no entry per call)."""

from __future__ import annotations

from pathlib import Path

from control_fakes import FakeBackend

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.control.dispatch import Dispatcher
from forgeoned.adapters.control.http import Request
from forgeoned.adapters.control.parser import parse_request
from forgeoned.adapters.control.verdict import BodyCaps
from forgeoned.core.call_ledger import CallKey, CallLedger
from forgeoned.core.clock import ManualClock
from forgeoned.core.policy import Caller, Policy
from forgeoned.core.stats import DaemonStats

CAPS = BodyCaps(1 << 20, 1 << 20, 1 << 16)
ROOT = Caller(uid=0, gid=0, pid=1, user="root")


def _invoke(name: str) -> Request:
    raw = f"POST /v1/plugins/{name}/invoke HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
    return parse_request(raw.encode())


def test_the_ledger_sums_per_key_and_window() -> None:
    ledger = CallLedger(interval_s=60)
    ok, bad = CallKey("uid=0", "p", "handle", "ok"), CallKey("uid=0", "p", "handle", "trap")
    assert not ledger.add(ok, 0.002, now=0, wall=100)
    assert not ledger.add(ok, 0.004, now=1, wall=101)
    assert not ledger.add(bad, 0.001, now=2, wall=102)
    assert ledger.due(59) == []
    due = {s.key: s for s in ledger.due(60)}
    assert (due[ok].count, due[ok].max_s) == (2, 0.004)
    assert abs(due[ok].total_s - 0.006) < 1e-12
    assert (due[ok].first, due[ok].last, due[bad].count) == (100, 101, 1)
    assert ledger.due(1000) == [] and ledger.drain() == []


def test_invokes_become_one_summary_entry_per_interval(tmp_path: Path) -> None:
    clock = ManualClock()
    with AuditLog(tmp_path, clock) as log:
        trail = AuditTrail(log, None, DaemonStats())
        dispatcher = Dispatcher(
            FakeBackend.with_plugins("hello"),
            trail,
            Policy(),
            CAPS,
            None,
            clock,
            calls=CallLedger(60.0),
        )
        before = log.head_seq
        for _ in range(50):
            assert dispatcher.handle(ROOT, _invoke("hello"))[9:12] == b"200"  # type: ignore[index]
        assert log.head_seq == before  # nothing written per call
        clock.advance(61)
        dispatcher.handle(ROOT, _invoke("hello"))  # writes the finished window's summary
        calls = [e for e in log.entries() if e["event"] == "plugin.calls"]
        assert len(calls) == 1
        entry = calls[0]
        assert (entry["plugin"], entry["actor"], entry["reason"]) == ("hello", "uid=0(root)", "ok")
        assert entry["details"]["count"] == 50 and entry["details"]["function"] == "handle"
        dispatcher.close()  # the call after the window is drained at close
        calls = [e for e in log.entries() if e["event"] == "plugin.calls"]
        assert [c["details"]["count"] for c in calls] == [50, 1]


def test_the_ledger_sums_fuel_and_keeps_the_most_one_call_used() -> None:
    ledger = CallLedger(interval_s=60)
    key = CallKey("uid=0", "p", "handle", "ok")
    for n, fuel in enumerate((300, 900, 100)):
        ledger.add(key, 0.001, now=n, wall=100 + n, fuel=fuel)
    (summary,) = ledger.drain()
    assert (summary.count, summary.fuel, summary.max_fuel) == (3, 1300, 900)
