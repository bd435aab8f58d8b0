"""Restart budget: exponential backoff with cap and jitter, quarantine of a crash loop."""

from __future__ import annotations

import pytest

from forgeoned.core.supervisor import RestartBudget, RestartPolicy, Verdict


def budget(**kw: float) -> RestartBudget:
    return RestartBudget(RestartPolicy(jitter=0.0, **kw), uniform=lambda: 0.5)  # type: ignore[arg-type]


def test_defaults_match_the_documented_systemd_and_kubernetes_values() -> None:
    p = RestartPolicy()
    assert (p.max_failures, p.window_s, p.backoff_initial_s) == (5, 10.0, 0.1)
    assert (p.backoff_factor, p.backoff_max_s) == (2.0, 300.0)


def test_backoff_doubles_within_the_window() -> None:
    b = budget()
    delays = [b.record_failure(t).at - t for t in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])


def test_more_than_n_failures_in_the_window_quarantines() -> None:
    b = budget(max_failures=3, window_s=10.0)
    verdicts = [b.record_failure(float(t)).verdict for t in range(4)]
    assert verdicts == [Verdict.RESTART] * 3 + [Verdict.QUARANTINE]


def test_failures_older_than_the_window_no_longer_count() -> None:
    b = budget(max_failures=2, window_s=10.0)
    b.record_failure(0.0)
    b.record_failure(1.0)
    decision = b.record_failure(12.0)  # the first two expired
    assert decision.verdict is Verdict.RESTART
    assert decision.failures_in_window == 1
    assert decision.at - 12.0 == pytest.approx(0.1)


def test_delay_is_capped() -> None:
    b = budget(backoff_initial_s=10.0, backoff_max_s=25.0, max_failures=100, window_s=1e6)
    delays = [b.record_failure(float(t)).at - t for t in range(5)]
    assert delays == pytest.approx([10.0, 20.0, 25.0, 25.0, 25.0])


@pytest.mark.parametrize("u", [0.0, 0.25, 0.999])
def test_jitter_stays_within_its_fraction(u: float) -> None:
    b = RestartBudget(RestartPolicy(jitter=0.1), uniform=lambda: u)
    delay = b.record_failure(0.0).at
    assert 0.09 <= delay <= 0.11


def test_reset_forgets_history() -> None:
    b = budget(max_failures=1)
    b.record_failure(0.0)
    b.reset()
    assert b.failures(0.5) == 0
    assert b.record_failure(1.0).verdict is Verdict.RESTART
