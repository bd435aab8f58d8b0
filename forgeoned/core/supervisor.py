"""Supervision: restart a failed plugin with exponential backoff, quarantine a crash loop.

The defaults follow two well-known supervisors so that operators meet no surprise:

* systemd: ``StartLimitBurst=5`` starts within ``StartLimitIntervalSec=10s`` and the unit is
  refused; ``RestartSec=100ms`` between restarts. Here: more than ``max_failures=5`` failures
  within ``window_s=10`` seconds puts the plugin in ``quarantined``; the first restart waits
  ``backoff_initial_s=0.1``.
* Kubernetes CrashLoopBackOff: 10 s doubling up to 5 minutes. Here: the delay doubles
  (``backoff_factor=2``) with every failure still inside the window, capped at
  ``backoff_max_s=300``. A plugin that stays up for a whole window starts again from the
  initial delay, as Kubernetes resets after 10 minutes of running.

``jitter`` spreads restarts of many plugins that failed together (0.1 = ±10 %).
The budget is pure: time comes from the caller (an injected clock's ``monotonic``).
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    max_failures: int = 5
    window_s: float = 10.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 300.0
    backoff_factor: float = 2.0
    jitter: float = 0.1


class Verdict(enum.Enum):
    RESTART = "restart"
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failure: restart at ``at`` (monotonic seconds), or quarantine."""

    verdict: Verdict
    at: float
    failures_in_window: int

    @property
    def quarantined(self) -> bool:
        return self.verdict is Verdict.QUARANTINE


class RestartBudget:
    """Failure history of one plugin name; not thread-safe (the daemon loop owns it)."""

    def __init__(self, policy: RestartPolicy, uniform: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._uniform = uniform
        self._failures: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._failures and now - self._failures[0] > self.policy.window_s:
            self._failures.popleft()

    def failures(self, now: float) -> int:
        self._expire(now)
        return len(self._failures)

    def delay(self, failures_in_window: int) -> float:
        """Backoff before the restart that follows the n-th failure of the window."""
        p = self.policy
        exponent = max(0, failures_in_window - 1)
        base = min(p.backoff_max_s, p.backoff_initial_s * p.backoff_factor**exponent)
        spread = base * p.jitter * (2.0 * self._uniform() - 1.0)
        return max(0.0, min(p.backoff_max_s, base + spread))

    def record_failure(self, now: float) -> Decision:
        """Count a failure at ``now`` and decide: restart later, or quarantine."""
        self._expire(now)
        self._failures.append(now)
        n = len(self._failures)
        if n > self.policy.max_failures:
            return Decision(Verdict.QUARANTINE, now, n)
        return Decision(Verdict.RESTART, now + self.delay(n), n)

    def reset(self) -> None:
        """Forget the history (operator reset, or a new version arrived)."""
        self._failures.clear()
