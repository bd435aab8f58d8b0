"""The swap state machine over fakes: every path, which events, and what keeps serving."""

from __future__ import annotations

import threading

import pytest
from daemon_fakes import (
    INIT_FAILS,
    START_FAILS,
    FakeCommitter,
    FakeLoader,
    FakeVersion,
    RecordingAudit,
    StepLog,
    cand,
)

from forgeoned.core.clock import ManualClock
from forgeoned.core.events import EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.stats import DaemonStats
from forgeoned.core.swap_outcome import Outcome
from forgeoned.core.swapper import Step, Swapper
from forgeoned.errors import (
    LoadError,
    RollbackError,
    SignatureError,
    SignatureReason,
    UnavailableError,
)
from forgeoned.service.plugin_host import PluginHost


class World:
    def __init__(self, drain_timeout: float = 2.0) -> None:
        self.loader = FakeLoader()
        self.committer = FakeCommitter()
        self.audit = RecordingAudit()
        self.stats = DaemonStats()
        self.steps = StepLog()
        self.swapper = Swapper(
            self.loader,
            self.committer,
            self.audit,
            self.stats,
            ManualClock(),
            drain_timeout,
            self.steps,
        )
        self.host = PluginHost("hello", hold_timeout_s=5.0)

    def install_v1(self) -> FakeVersion:
        assert self.swapper.swap(self.host, cand("hello", "1.0.0")).outcome is Outcome.INSTALLED
        v1 = self.host.current
        assert isinstance(v1, FakeVersion)
        self.audit.events.clear()
        self.committer.commits.clear()
        self.steps.steps.clear()
        return v1


def test_first_install_runs_and_is_committed() -> None:
    w = World()
    result = w.swapper.swap(w.host, cand("hello", "1.0.0"))
    assert result.outcome is Outcome.INSTALLED
    assert w.host.state is State.RUNNING
    assert w.host.call(b"x") == b"1.0.0:x"
    assert w.committer.commits == [("hello", "sha-hello-1.0.0")]
    assert w.audit.names() == [EventName.PLUGIN_INSTALLED]
    assert w.stats.swaps[("hello", "installed")] == 1
    assert w.stats.swap_duration.count == 1


def test_upgrade_walks_every_step_in_order() -> None:
    w = World()
    v1 = w.install_v1()
    result = w.swapper.swap(w.host, cand("hello", "2.0.0"))
    assert result.outcome is Outcome.UPGRADED
    assert w.steps.steps == list(Step)
    assert v1.shut == 1
    assert w.host.call(b"y") == b"2.0.0:y"
    assert w.committer.commits == [("hello", "sha-hello-2.0.0")]
    assert w.audit.names() == [EventName.PLUGIN_UPGRADED]
    assert w.audit.events[0].message == "1.0.0 -> 2.0.0"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SignatureError("module is not signed", SignatureReason.UNSIGNED), "unsigned"),
        (SignatureError("bad", SignatureReason.TAMPERED), "tampered"),
        (RollbackError("hello 0.9.0 is a downgrade"), "downgrade"),
    ],
)
def test_rejected_artifact_leaves_the_old_version_serving(error: Exception, code: str) -> None:
    w = World()
    v1 = w.install_v1()
    bad = cand("hello", "2.0.0")
    w.loader.verify_errors[bad.sha256] = error  # type: ignore[assignment]
    result = w.swapper.swap(w.host, bad)
    assert result.outcome is Outcome.REJECTED
    assert w.stats.rejected[code] == 1
    assert w.audit.names() == [EventName.PLUGIN_REJECTED]
    assert w.audit.events[0].reason == code
    assert w.host.current is v1 and v1.shut == 0
    assert w.host.state is State.RUNNING
    assert w.host.call(b"z") == b"1.0.0:z"
    assert w.committer.commits == []


def test_compile_over_its_limits_is_rejected_and_old_serves() -> None:
    w = World()
    v1 = w.install_v1()
    bad = cand("hello", "2.0.0")
    w.loader.compile_errors[bad.sha256] = LoadError("compile exceeded its 1s time limit")
    assert w.swapper.swap(w.host, bad).outcome is Outcome.REJECTED
    assert w.stats.rejected["load_failed"] == 1
    assert w.host.current is v1 and w.host.call(b"a") == b"1.0.0:a"


def test_init_failure_rolls_back_without_touching_the_old_version() -> None:
    w = World()
    v1 = w.install_v1()
    bad = cand("hello", "2.0.0")
    w.loader.init_errors[bad.sha256] = INIT_FAILS
    result = w.swapper.swap(w.host, bad)
    assert result.outcome is Outcome.ROLLED_BACK
    assert w.audit.names() == [EventName.PLUGIN_ROLLED_BACK]
    assert w.audit.events[0].reason == "status_nonzero"
    assert w.host.current is v1 and v1.shut == 0
    assert Step.DRAIN not in w.steps.steps
    assert w.host.call(b"b") == b"1.0.0:b"
    assert w.committer.commits == []


def test_start_failure_puts_the_old_version_back_as_it_was() -> None:
    w = World()
    v1 = w.install_v1()
    bad = cand("hello", "2.0.0")
    w.loader.start_errors[bad.sha256] = START_FAILS
    result = w.swapper.swap(w.host, bad)
    assert result.outcome is Outcome.ROLLED_BACK
    new = w.loader.made[-1]
    assert new.version == "2.0.0" and new.shut == 1
    assert w.host.current is v1  # never stopped: the same instances, their memory kept
    assert v1.shut == 0 and v1.started == 1
    assert w.host.state is State.RUNNING
    assert w.host.call(b"c") == b"1.0.0:c"
    assert w.committer.commits == []
    assert w.audit.names() == [EventName.PLUGIN_ROLLED_BACK]
    assert Step.STOP_OLD not in w.steps.steps


def test_a_paused_old_version_comes_back_started_afresh() -> None:
    w = World()
    v1 = w.install_v1()
    w.host.pause(drain_timeout=1)
    bad = cand("hello", "2.0.0")
    w.loader.start_errors[bad.sha256] = START_FAILS
    assert w.swapper.swap(w.host, bad).outcome is Outcome.ROLLED_BACK
    restored = w.host.current
    assert isinstance(restored, FakeVersion) and restored.revived_from is v1
    assert restored.started == 1 and v1.shut == 1
    assert w.host.state is State.RUNNING and w.host.call(b"c") == b"1.0.0:c"


def test_state_write_failure_restores_the_old_version() -> None:
    w = World()
    w.install_v1()
    w.committer.fail = True
    result = w.swapper.swap(w.host, cand("hello", "2.0.0"))
    assert result.outcome is Outcome.ROLLED_BACK
    assert result.error is not None and result.error.code == "state_io"
    assert w.host.call(b"d") == b"1.0.0:d"


def test_old_version_that_cannot_restart_leaves_the_plugin_failed() -> None:
    w = World()
    w.install_v1()
    w.host.pause(drain_timeout=1)  # a paused old version has to be started afresh
    bad = cand("hello", "2.0.0")
    w.loader.start_errors[bad.sha256] = START_FAILS
    w.loader.revive_error = INIT_FAILS
    assert w.swapper.swap(w.host, bad).outcome is Outcome.FAILED
    assert w.host.state is State.FAILED
    assert w.audit.names() == [EventName.PLUGIN_FAILED]
    with pytest.raises(UnavailableError):
        w.host.call(b"e")


def test_first_install_whose_init_fails_is_failed() -> None:
    w = World()
    bad = cand("hello", "1.0.0")
    w.loader.init_errors[bad.sha256] = INIT_FAILS
    assert w.swapper.swap(w.host, bad).outcome is Outcome.FAILED
    assert w.host.state is State.FAILED
    assert w.audit.names() == [EventName.PLUGIN_FAILED]
    assert w.committer.commits == []


def test_remove_drains_stops_and_forgets() -> None:
    w = World()
    v1 = w.install_v1()
    assert w.swapper.remove(w.host).outcome is Outcome.REMOVED
    assert v1.shut == 1
    assert w.host.state is State.STOPPED and w.host.current is None
    assert w.committer.commits == [("hello", None)]
    assert w.audit.names() == [EventName.PLUGIN_REMOVED]
    with pytest.raises(UnavailableError):
        w.host.call(b"f")


def test_calls_during_a_swap_wait_and_are_answered_by_the_new_version() -> None:
    w = World()
    v1 = w.install_v1()
    v1.block = threading.Event()
    results: dict[str, bytes] = {}

    def call(key: str) -> None:
        results[key] = w.host.call(key.encode())

    in_flight = threading.Thread(target=call, args=("inflight",))
    in_flight.start()
    assert v1.entered.wait(5)
    swap = threading.Thread(target=w.swapper.swap, args=(w.host, cand("hello", "2.0.0")))
    swap.start()
    # The swap is draining (gate closed) while the first call is still running.
    assert w.host.wait_for(State.DRAINING, 5)
    queued = threading.Thread(target=call, args=("queued",))
    queued.start()
    v1.block.set()
    for t in (in_flight, swap, queued):
        t.join(10)
    assert results == {"inflight": b"1.0.0:inflight", "queued": b"2.0.0:queued"}


def test_drain_timeout_interrupts_the_in_flight_call() -> None:
    w = World(drain_timeout=0.05)
    v1 = w.install_v1()
    v1.block = threading.Event()
    errors: list[Exception] = []

    def call() -> None:
        try:
            w.host.call(b"slow")
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    assert v1.entered.wait(5)
    assert w.swapper.swap(w.host, cand("hello", "2.0.0")).outcome is Outcome.UPGRADED
    t.join(10)
    assert v1.interrupted.is_set()
    assert len(errors) == 1 and "interrupted" in str(errors[0])
    assert w.host.state is State.RUNNING  # an interruption we caused is not a plugin fault
    assert w.host.call(b"g") == b"2.0.0:g"


def test_activation_events_carry_the_signers_of_their_version() -> None:
    w = World()
    w.swapper.swap(w.host, cand("hello", "1.0.0"))
    w.swapper.swap(w.host, cand("hello", "2.0.0"))
    installed, upgraded = w.audit.events
    assert installed.event is EventName.PLUGIN_INSTALLED
    assert installed.details == {"signers": ["key-of-1.0.0"], "signed": True}
    assert upgraded.event is EventName.PLUGIN_UPGRADED
    assert upgraded.details == {"signers": ["key-of-2.0.0"], "signed": True}


@pytest.mark.parametrize("fails", ["init", "start"])
def test_rolled_back_names_the_failed_signers_and_the_version_that_serves(fails: str) -> None:
    w = World()
    v1 = w.install_v1()
    bad = cand("hello", "2.0.0")
    errors = w.loader.init_errors if fails == "init" else w.loader.start_errors
    errors[bad.sha256] = INIT_FAILS if fails == "init" else START_FAILS
    w.swapper.swap(w.host, bad)
    [event] = w.audit.events
    assert event.event is EventName.PLUGIN_ROLLED_BACK and event.version == "2.0.0"
    assert event.details == {
        "signers": ["key-of-2.0.0"],
        "signed": True,
        "serving": {"version": "1.0.0", "sha256": v1.sha256},
    }


def test_a_rejection_before_verification_has_no_signers() -> None:
    w = World()
    bad = cand("hello", "1.0.0")
    w.loader.verify_errors[bad.sha256] = SignatureError(
        "module is not signed", SignatureReason.UNSIGNED
    )
    w.swapper.swap(w.host, bad)
    [event] = w.audit.events
    assert event.event is EventName.PLUGIN_REJECTED
    assert event.details == {"file": "hello.wasm"}  # no signers; the file it came from
    assert event.message == "hello.wasm: module is not signed"
