"""The inline policy: which plugins' invokes may run on the control server's loop thread."""

from __future__ import annotations

from forgeoned.adapters.control.inline import InlinePolicy
from forgeoned.core.clock import ManualClock

FAST = 0.0001
SLOW = 1 / 128  # over the fast bound, under the long one (binary fractions: exact sums)
LONG = 2.0  # a strike


def promoted(policy: InlinePolicy, plugin: str = "p") -> InlinePolicy:
    for _ in range(policy.probation):
        policy.lane_call(plugin, FAST)
    assert policy.eligible(plugin)
    return policy


def test_a_plugin_never_seen_runs_in_the_lane_until_its_probation_is_passed() -> None:
    policy = InlinePolicy(ManualClock())
    assert not policy.eligible("p")
    for _ in range(policy.probation - 1):
        policy.lane_call("p", FAST)
    assert not policy.eligible("p")
    policy.lane_call("p", FAST)
    assert policy.eligible("p") and not policy.eligible("other")


def test_one_slow_lane_call_starts_the_probation_again() -> None:
    policy = InlinePolicy(ManualClock())
    for _ in range(policy.probation - 1):
        policy.lane_call("p", FAST)
    policy.lane_call("p", SLOW)
    for _ in range(policy.probation - 1):
        policy.lane_call("p", FAST)
    assert not policy.eligible("p")
    policy.lane_call("p", FAST)
    assert policy.eligible("p")


def test_slow_inline_calls_are_paid_from_a_budget_that_refills_with_time() -> None:
    clock = ManualClock()
    policy = promoted(InlinePolicy(clock, slow_share=1 / 8, burst_s=1 / 8))
    for _ in range(16):  # 16 x 1/128 s = the whole burst
        policy.inline_call("p", SLOW)
    assert policy.eligible("p") and policy.demotions == 0
    policy.inline_call("p", SLOW)  # overdrawn: back to the lane
    assert not policy.eligible("p") and policy.demotions == 1
    promoted(policy)
    clock.advance(1 / 8)  # refills 1/64 s: the 1/128 s overdraft, then one slow call
    policy.inline_call("p", SLOW)
    assert policy.eligible("p")
    policy.inline_call("p", SLOW)
    assert not policy.eligible("p") and policy.demotions == 2


def test_fast_inline_calls_cost_nothing() -> None:
    policy = promoted(InlinePolicy(ManualClock()))
    for _ in range(100_000):
        policy.inline_call("p", FAST)
    assert policy.eligible("p") and policy.statistics().inline_calls == 100_000


def test_long_calls_are_strikes_and_three_of_them_end_inline_calls_for_good() -> None:
    policy = InlinePolicy(ManualClock())
    probations = []
    for _ in range(policy.max_strikes):
        probations.append(calls_to_promotion(policy))
        policy.inline_call("p", LONG)
        assert not policy.eligible("p")
    assert probations == [32, 64, 128]  # each strike doubles the next probation
    for _ in range(10_000):
        policy.lane_call("p", FAST)
    assert not policy.eligible("p")
    stats = policy.statistics()
    assert stats.strikes == 3 and stats.banned == ("p",) and stats.eligible == ()


def calls_to_promotion(policy: InlinePolicy) -> int:
    """Clean lane calls until the plugin runs inline (bounded)."""
    for calls in range(1, 1 << 20):
        policy.lane_call("p", FAST)
        if policy.eligible("p"):
            return calls
    raise AssertionError("never promoted")


def test_plugins_are_judged_apart() -> None:
    policy = promoted(promoted(InlinePolicy(ManualClock()), "a"), "b")
    policy.inline_call("a", LONG)
    assert not policy.eligible("a") and policy.eligible("b")
