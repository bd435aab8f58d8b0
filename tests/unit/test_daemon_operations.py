"""The plugin operations and the reconciler over fakes of their ports (``daemon_world``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from daemon_world import World

from forgeoned.adapters.audit.outage import Outage
from forgeoned.core.events import EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.supervisor import RestartPolicy
from forgeoned.errors import (
    AuditUnavailableError,
    ConflictError,
    NotFoundError,
    PluginStatusError,
    RollbackError,
    SignatureError,
    StateError,
)


def test_add_installs_and_the_install_is_audited_with_its_actor() -> None:
    w = World()
    w.add("hello.wasm", b"hello@1.0.0", "alice")
    assert w.ops.view("hello").state == "running"
    assert w.events(EventName.PLUGIN_INSTALLED) == [("hello", "1.0.0", "alice")]
    assert w.state.state.active["hello"].source == "hello.wasm"


def test_remove_by_name_deletes_every_file_of_the_plugin() -> None:
    w = World()
    w.add("hello.wasm", b"hello@1.0.0")
    w.add("other.wasm", b"other@1.0.0")
    w.ops.remove("hello", "bob")
    assert w.files.names() == ["other.wasm"]
    assert [v.name for v in w.ops.views()] == ["other"]
    assert w.events(EventName.PLUGIN_REMOVED) == [("hello", "1.0.0", "bob")]
    assert "hello" not in w.state.state.active
    with pytest.raises(NotFoundError):
        w.ops.remove("hello", "bob")


def test_a_withdrawal_that_cannot_be_recorded_puts_the_plugin_back() -> None:
    w = World()
    w.add("hello.wasm", b"hello@1.0.0")
    host = w.plugins.host("hello")
    w.state.fail = True  # the removal's state write fails

    def revoked(sha256: str) -> SignatureError:
        return SignatureError("signed only by a revoked key")

    with pytest.raises(StateError):
        w.ops.withdraw_untrusted(revoked)
    assert w.plugins.get("hello") is host  # the next reconcile tries again
    assert w.events(EventName.PLUGIN_REJECTED) == [("hello", "1.0.0", None)]
    assert "hello" in w.state.state.active
    w.state.fail = False
    w.ops.withdraw_untrusted(revoked)
    assert w.plugins.get("hello") is None
    assert "hello" not in w.state.state.active


def test_a_trusted_version_is_not_withdrawn() -> None:
    w = World()
    w.add("hello.wasm", b"hello@1.0.0")
    w.ops.withdraw_untrusted(lambda sha256: None)
    assert w.plugins.host("hello").state is State.RUNNING
    assert w.events(EventName.PLUGIN_REJECTED) == []


def test_allow_downgrade_records_who_allowed_it_and_tries_at_once() -> None:
    w = World()
    w.add("hello.wasm", b"hello@2.0.0")
    w.ops.allow_downgrade("hello", "0.5.0", "admin")  # nothing of that version in plugins.d
    assert w.state.state.overrides["hello"].actor == "admin"
    refused = hashlib.sha256(b"hello@1.0.0").hexdigest()
    w.loader.verify_errors[refused] = RollbackError("hello 1.0.0 is a downgrade")
    w.drop("hello-1.wasm", b"hello@1.0.0")
    w.files.delete("hello.wasm")
    w.reconciler.files_changed({"hello.wasm"})
    assert ("hello", refused) in w.reconciler.refusals
    assert w.ops.view("hello").version == "2.0.0"  # the refused file is all plugins.d has
    del w.loader.verify_errors[refused]  # the floor would let it through now
    w.ops.allow_downgrade("hello", "1.0.0", "admin")
    assert ("hello", refused) not in w.reconciler.refusals  # the refused bytes are tried again
    assert w.ops.view("hello").version == "1.0.0"
    assert "hello" not in w.state.state.overrides  # good for one activation
    assert w.state.state.active["hello"].version == "1.0.0"


def test_pause_resume_and_reset_are_audited_with_their_actor() -> None:
    w = World()
    w.add("hello.wasm", b"hello@1.0.0")
    w.ops.pause("hello", "ops")
    assert w.plugins.host("hello").state is State.PAUSED
    w.ops.resume("hello", "ops")
    with pytest.raises(ConflictError, match="not quarantined"):
        w.ops.reset("hello", "ops")
    assert w.events(EventName.PLUGIN_PAUSED) == [("hello", "1.0.0", "ops")]
    assert w.events(EventName.PLUGIN_RESUMED) == [("hello", "1.0.0", "ops")]
    assert w.events(EventName.PLUGIN_RESET) == []


# --- failing closed on the audit log ---------------------------------------------------------


def test_no_operation_happens_without_its_first_record() -> None:
    w = World(gate=Outage())
    w.add("hello.wasm", b"hello@1.0.0", "alice")
    w.add("paused.wasm", b"paused@1.0.0", "alice")
    w.ops.pause("paused", "ops")
    before = (w.files.names(), w.state.state, len(w.audit.events))
    w.audit.full = True
    refused: list[Callable[[], object]] = [
        lambda: w.add("new.wasm", b"new@1.0.0", "alice"),
        lambda: w.ops.remove("hello", "bob"),
        lambda: w.ops.pause("hello", "ops"),
        lambda: w.ops.resume("paused", "ops"),
        lambda: w.ops.restart("hello", "ops"),
        lambda: w.ops.allow_downgrade("hello", "0.9.0", "admin"),
    ]
    for action in refused:
        with pytest.raises(AuditUnavailableError, match="No space left on device"):
            action()
    assert (w.files.names(), w.state.state, len(w.audit.events)) == before
    assert w.plugins.host("hello").state is State.RUNNING
    assert w.plugins.host("paused").state is State.PAUSED
    assert w.plugins.stats_of("hello").restarts == 0
    w.audit.full = False
    w.ops.pause("hello", "ops")  # works again, recorded first
    assert w.audit.events[-1].event is EventName.PLUGIN_PAUSED


def test_each_operation_writes_its_first_record_before_it_acts() -> None:
    w = World(gate=Outage())
    w.add("hello.wasm", b"hello@1.0.0", "alice")
    w.ops.pause("hello", "ops")
    w.ops.resume("hello", "ops")
    w.ops.restart("hello", "ops")
    w.ops.remove("hello", "bob")
    assert [e.event.label for e in w.audit.events] == [
        "control.requested",
        "plugin.installed",
        "plugin.paused",
        "plugin.resumed",
        "plugin.restarted",
        "control.requested",
        "plugin.removed",
    ]
    install, remove = (e for e in w.audit.events if e.event is EventName.CONTROL_REQUESTED)
    assert (install.plugin, install.version, install.actor) == ("hello", "1.0.0", "alice")
    assert install.sha256 == hashlib.sha256(b"hello@1.0.0").hexdigest()
    assert install.details == {"action": "install", "file": "hello.wasm"}
    assert (remove.plugin, remove.actor, remove.details) == ("hello", "bob", {"action": "remove"})


def test_an_illegal_pause_is_refused_before_anything_is_recorded() -> None:
    w = World(gate=Outage())
    w.add("hello.wasm", b"hello@1.0.0")
    count = len(w.audit.events)
    with pytest.raises(ConflictError):
        w.ops.resume("hello", "ops")  # running, not paused
    w.ops.pause("hello", "ops")
    with pytest.raises(ConflictError):
        w.ops.pause("hello", "ops")  # paused already
    assert w.names()[count:] == [EventName.PLUGIN_PAUSED]  # only the legal pause


def test_the_reconciler_changes_nothing_while_the_audit_log_fails() -> None:
    gate = Outage()
    w = World(gate=gate)
    gate.failed("plugin.failed", "No space left on device", 1.0)
    w.files.write("hello.wasm", b"hello@1.0.0")  # dropped in by hand
    w.reconciler.files_changed({"hello.wasm"})
    assert w.plugins.get("hello") is None and w.audit.events == []
    gate.gap_event(2.0)
    gate.finish()  # the gap entry is durable: writes work again
    w.reconciler.rescan()
    assert w.plugins.host("hello").state is State.RUNNING


def test_retry_is_refused_unrecorded_while_the_audit_log_fails() -> None:
    """retry fails closed like the other actions: nothing forgotten, nothing tried."""
    w = World(RestartPolicy(max_failures=0, jitter=0), gate=Outage())
    w.drop("hello.wasm", b"hello@1.0.0")
    w.loader.init_errors[hashlib.sha256(b"hello@2.0.0").hexdigest()] = PluginStatusError("init", 3)
    w.drop("hello-2.wasm", b"hello@2.0.0")
    refused = w.reconciler.refusals.of("hello")
    assert [r.version for r in refused] == ["2.0.0"]
    count = len(w.audit.events)
    w.audit.full = True
    with pytest.raises(AuditUnavailableError):
        w.ops.retry("hello", "admin")
    assert w.reconciler.refusals.of("hello") == refused
    assert len(w.audit.events) == count
    running = w.plugins.host("hello").current
    assert running is not None and running.version == "1.0.0"
