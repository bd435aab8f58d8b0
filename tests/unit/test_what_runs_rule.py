"""The rule for what runs, over fakes of the ports (``daemon_world``): restarts bring back the
active version, never a refused candidate; refusals are persisted and stay until other bytes
or an admin's retry; install tells what became of its own bytes and leaves plugins.d as it
was when they do not run; status shows all of it."""

from __future__ import annotations

import hashlib
import threading

import pytest
from daemon_fakes import FakeLoader
from daemon_world import World

from forgeoned.core.desired import Candidate
from forgeoned.core.events import EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.state import DaemonState, RefusalKind
from forgeoned.core.stats import CandidateStatus
from forgeoned.core.supervisor import RestartPolicy
from forgeoned.errors import (
    ConflictError,
    LoadError,
    PluginStatusError,
    PluginTrap,
    RollbackError,
)

V1, V2 = b"hello@1.0.0", b"hello@2.0.0"
SHA1, SHA2 = hashlib.sha256(V1).hexdigest(), hashlib.sha256(V2).hexdigest()


def _with_rolled_back_v2(policy: RestartPolicy | None = None) -> World:
    """1.0.0 runs; 2.0.0 (``init`` returns 3) was dropped in and rolled back."""
    w = World(policy)
    w.drop("hello.wasm", V1)
    w.loader.init_errors[SHA2] = PluginStatusError("init", 3)
    w.drop("hello-2.wasm", V2)
    assert w.events(EventName.PLUGIN_ROLLED_BACK) == [("hello", "2.0.0", "uid=0")]
    return w


def _trap(w: World) -> None:
    """One trap in the running version's ``handle``; the supervisor sees it on the loop."""
    host = w.plugins.host("hello")
    assert host.current is not None
    host.current.trap = True  # type: ignore[attr-defined]  # a FakeVersion
    with pytest.raises(PluginTrap):
        host.call(b"x")
    w.run_posted()


def _restart_when_due(w: World) -> None:
    w.clock.advance(60)
    w.reconciler.run_due_restarts()


def test_a_trap_in_the_active_version_restarts_it_not_the_rolled_back_candidate() -> None:
    w = _with_rolled_back_v2()
    _trap(w)
    assert w.plugins.host("hello").state is State.FAILED
    _restart_when_due(w)
    host = w.plugins.host("hello")
    assert host.state is State.RUNNING and host.call(b"x") == b"1.0.0:x"
    assert [v.sha256 for v in w.loader.made].count(SHA2) == 0  # never instantiated again
    assert w.stats.swaps[("hello", "restarted")] == 1
    assert w.stats.swaps[("hello", "upgraded")] == 0  # a restart is not an upgrade
    assert w.state.state.active["hello"].version == "1.0.0"
    assert w.events(EventName.PLUGIN_RESTARTED) == [("hello", "1.0.0", None)]


def test_reset_of_a_quarantine_brings_back_the_active_version() -> None:
    w = _with_rolled_back_v2(RestartPolicy(max_failures=0, jitter=0))
    _trap(w)  # the budget allows no failure: quarantined at once
    host = w.plugins.host("hello")
    assert host.wait_for(State.QUARANTINED, 0)
    view = w.ops.view("hello")
    assert (view.version, view.sha256) == ("1.0.0", SHA1)
    assert view.quarantine is not None and view.quarantine.reason == "restart_budget"
    assert "trapped" in view.quarantine.last_error or "unreachable" in view.quarantine.last_error
    assert w.state.state.causes["hello"] == view.quarantine
    w.ops.reset("hello", "ops")
    assert host.state is State.RUNNING and host.call(b"x") == b"1.0.0:x"
    assert w.events(EventName.PLUGIN_RESET) == [("hello", "1.0.0", "ops")]
    assert w.events(EventName.PLUGIN_INSTALLED)[-1] == ("hello", "1.0.0", "uid=0")  # the drop only
    assert "hello" not in w.state.state.causes and w.state.state.quarantined == frozenset()


def test_a_refusal_is_persisted_and_a_daemon_with_that_state_keeps_it_out() -> None:
    w = _with_rolled_back_v2()
    [refusal] = w.state.state.refused["hello"]
    assert (refusal.version, refusal.sha256, refusal.kind) == (
        "2.0.0",
        SHA2,
        RefusalKind.ROLLED_BACK,
    )
    assert refusal.reason == "status_nonzero" and refusal.file == "hello-2.wasm"
    assert DaemonState.from_json(w.state.state.to_json()) == w.state.state  # as on disk
    w2 = World(after=w)  # a daemon restart
    w2.start()
    assert w2.plugins.host("hello").call(b"x") == b"1.0.0:x"
    assert all(v.sha256 != SHA2 for v in w2.loader.made)


def test_an_old_state_file_without_the_new_fields_loads() -> None:
    old = {
        "format": 1,
        "active": {"hello": {"version": "1.0.0", "sha256": SHA1, "source": "hello.wasm"}},
        "floors": {"hello": {"version": "1.0.0", "sha256": SHA1}},
        "overrides": {},
        "quarantined": ["hello"],
    }
    st = DaemonState.from_json(old)
    assert st.refused == {} and st.causes == {} and st.quarantined == {"hello"}


def test_retry_is_audited_and_tries_the_refused_version_again() -> None:
    w = _with_rolled_back_v2()
    with pytest.raises(ConflictError, match="no rejected"):
        w.ops.retry("other", "ops")
    with pytest.raises(PluginStatusError) as failed:
        w.ops.retry("hello", "ops")  # it fails the same way: refused again, 1.0.0 serves
    assert failed.value.code == "status_nonzero"
    assert w.events(EventName.PLUGIN_RETRY_ALLOWED) == [("hello", "2.0.0", "ops")]
    assert len(w.events(EventName.PLUGIN_ROLLED_BACK)) == 2
    assert ("hello", SHA2) in w.reconciler.refusals
    del w.loader.init_errors[SHA2]  # the environment was fixed
    view = w.ops.retry("hello", "ops")
    assert view is not None and (view.version, view.state) == ("2.0.0", "running")
    assert w.state.state.refused == {}


def test_other_bytes_in_the_refused_file_are_tried() -> None:
    w = _with_rolled_back_v2()
    w.drop("hello-2.wasm", b"hello@2.0.1")
    assert w.ops.view("hello").version == "2.0.1"
    assert w.ops.view("hello").candidates[0].status is CandidateStatus.ROLLED_BACK


def test_status_after_a_rollback_names_the_candidate_and_the_error_text() -> None:
    w = _with_rolled_back_v2()
    view = w.ops.view("hello")
    assert (view.version, view.state) == ("1.0.0", "running")
    [cand] = view.candidates
    assert (cand.version, cand.status, cand.reason) == ("2.0.0", CandidateStatus.ROLLED_BACK,
                                                        "status_nonzero")  # fmt: skip
    assert cand.at == w.clock.wall() and cand.file == "hello-2.wasm"
    assert view.last_error == "2.0.0 rolled back: export 'init' returned status 3"
    assert view.last_error_code == "status_nonzero"


def test_a_first_version_that_fails_is_retried_by_the_supervisor_not_refused() -> None:
    w = World()
    w.loader.start_errors[SHA1] = PluginStatusError("start", 1)
    w.drop("hello.wasm", V1)
    assert w.plugins.host("hello").state is State.FAILED
    assert w.reconciler.refusals.of("hello") == ()
    view = w.ops.view("hello")
    assert (view.version, view.state) == ("1.0.0", "failed")  # the candidate it tries
    del w.loader.start_errors[SHA1]
    _restart_when_due(w)
    assert w.plugins.host("hello").state is State.RUNNING


class BlockingLoader(FakeLoader):
    """Compiles only once ``go`` is set, and says when it is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()
        self.go = threading.Event()

    def compile(self, verified: Candidate) -> Candidate:
        self.waiting.set()
        assert self.go.wait(10), "the test never let the compile finish"
        return super().compile(verified)


def test_a_new_plugin_being_compiled_shows_as_starting_with_its_version() -> None:
    w = World()
    loader = BlockingLoader()
    w.reconciler.swapper.loader = loader
    thread = threading.Thread(target=w.drop, args=("hello.wasm", V1))
    thread.start()
    try:
        assert loader.waiting.wait(10)
        view = w.ops.view("hello")
        assert (view.state, view.version, view.sha256) == ("starting", "1.0.0", SHA1)
    finally:
        loader.go.set()
        thread.join(10)
    assert w.ops.view("hello").state == "running"


def test_an_upgrade_being_compiled_is_a_pending_candidate() -> None:
    w = World()
    w.drop("hello.wasm", V1)
    loader = BlockingLoader()
    w.reconciler.swapper.loader = loader
    thread = threading.Thread(target=w.drop, args=("hello.wasm", V2))
    thread.start()
    try:
        assert loader.waiting.wait(10)
        view = w.ops.view("hello")
        assert (view.state, view.version) == ("running", "1.0.0")
        assert [(c.version, c.status) for c in view.candidates] == [
            ("2.0.0", CandidateStatus.PENDING)
        ]
    finally:
        loader.go.set()
        thread.join(10)
    assert w.ops.view("hello").candidates == ()


# --- install ----------------------------------------------------------------------------


def test_install_that_runs_reports_running() -> None:
    w = World()
    report = w.add("hello.wasm", V1, "alice")
    assert report.running and report.view is not None and report.view.version == "1.0.0"


def test_install_rolled_back_raises_its_audit_code_and_puts_the_old_file_back() -> None:
    w = World()
    w.add("hello.wasm", V1)
    w.loader.init_errors[SHA2] = PluginStatusError("init", 3)
    with pytest.raises(PluginStatusError) as failed:
        w.add("hello.wasm", V2, "alice")  # replaces the running version's file
    [event] = [e for e in w.audit.events if e.event is EventName.PLUGIN_ROLLED_BACK]
    assert failed.value.code == event.reason == "status_nonzero" and event.actor == "alice"
    assert "hello.wasm was taken out of plugins.d again" in failed.value.__notes__
    assert w.files.files["hello.wasm"][0] == V1  # the file it replaced is back
    assert w.plugins.host("hello").call(b"x") == b"1.0.0:x"
    assert w.state.state.active["hello"].sha256 == SHA1


@pytest.mark.parametrize(
    ("error", "code"),
    [(RollbackError("hello 2.0.0 is a downgrade"), "downgrade"),
     (LoadError("ABI v1: missing export 'unload'"), "load_failed")],
)  # fmt: skip
def test_install_rejected_raises_and_leaves_no_file(error: Exception, code: str) -> None:
    w = World()
    w.add("hello.wasm", V1)
    w.loader.verify_errors[SHA2] = error  # type: ignore[assignment]
    with pytest.raises(type(error)) as refused:
        w.add("hello-2.wasm", V2)
    assert refused.value.code == code  # type: ignore[attr-defined]
    assert "hello-2.wasm" not in w.files.files
    assert w.ops.view("hello").version == "1.0.0"
    assert w.events(EventName.PLUGIN_REJECTED) == [("hello", "2.0.0", "uid=0")]


def test_install_of_a_first_version_that_fails_leaves_nothing_behind() -> None:
    w = World()
    w.loader.init_errors[SHA1] = PluginStatusError("init", 3)
    with pytest.raises(PluginStatusError):
        w.add("hello.wasm", V1, "alice")
    assert w.files.files == {} and w.plugins.get("hello") is None
    assert w.reconciler.restarts.next() is None  # nothing left to restart


def test_install_below_the_selected_version_is_a_downgrade_and_leaves_no_file() -> None:
    w = World()
    w.add("hello-2.wasm", V2)
    with pytest.raises(RollbackError, match="is a downgrade"):
        w.add("hello-1.wasm", V1, "alice")
    assert sorted(w.files.files) == ["hello-2.wasm"]
    assert w.events(EventName.PLUGIN_REJECTED) == [("hello", "1.0.0", "alice")]
    assert w.stats.rejected["downgrade"] == 1


def test_install_of_refused_bytes_tries_them_again() -> None:
    w = _with_rolled_back_v2()
    del w.loader.init_errors[SHA2]
    report = w.add("hello-2.wasm", V2, "alice")
    assert report.running and report.view is not None and report.view.version == "2.0.0"
    assert w.reconciler.refusals.of("hello") == ()


def test_install_over_another_plugins_file_is_refused_before_writing() -> None:
    w = World()
    w.add("hello.wasm", V1)
    with pytest.raises(ConflictError, match="holds plugin 'hello'"):
        w.add("hello.wasm", b"other@1.0.0")
    assert w.files.files["hello.wasm"][0] == V1 and w.files.writes == 1
    assert w.ops.view("hello").state == "running"
