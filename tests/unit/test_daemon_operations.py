"""The plugin operations and the reconciler over fakes of their ports: plugins.d, the state
file and the kept copies in memory, the swap ports faked (no wasm, no disk)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from daemon_fakes import FakeLoader, RecordingAudit

from forgeoned.adapters.audit.outage import Outage
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.artifact_file import ArtifactFile, FileKey, Identity
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.manifest import parse_manifest_obj
from forgeoned.core.ports import AuditGate
from forgeoned.core.state import DaemonState
from forgeoned.core.stats import DaemonStats, PluginStats
from forgeoned.core.supervisor import RestartPolicy
from forgeoned.core.swapper import Swapper
from forgeoned.errors import (
    AuditUnavailableError,
    ConflictError,
    NotFoundError,
    SignatureError,
    StateError,
)
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.operations import PluginOperations
from forgeoned.service.plugin_host import OnFault, PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.reconciler import Reconciler
from forgeoned.service.rejections import RejectionReport


@dataclass
class MemoryFiles:
    """plugins.d in memory (the PluginFiles port); a write is a new identity."""

    files: dict[str, tuple[bytes, Identity]] = field(default_factory=dict)
    writes: int = 0

    def names(self) -> list[str]:
        return sorted(self.files)

    def key(self, name: str) -> FileKey | None:
        found = self.files.get(name)
        return (found[1], None) if found is not None else None

    def read(self, name: str, max_bytes: int) -> ArtifactFile:
        if name not in self.files:
            raise FileNotFoundError(name)
        data, ident = self.files[name]
        return ArtifactFile(data, None, ident)

    def write(self, name: str, data: bytes) -> None:
        self.writes += 1
        self.files[name] = (data, Identity(self.writes, len(data), self.writes, 0o644))

    def delete(self, name: str) -> None:
        self.files.pop(name, None)


@dataclass
class MemoryState:
    """The StateRecord port; ``fail`` makes the next commits fail as a full disk does."""

    state: DaemonState = field(default_factory=DaemonState)
    fail: bool = False

    def commit(self, new: DaemonState) -> None:
        if self.fail:
            raise StateError("cannot write state.json: No space left on device")
        self.state = new


@dataclass
class MemoryKept:
    """The KeptCopies port."""

    files: dict[str, bytes] = field(default_factory=dict)

    def exists(self, name: str) -> bool:
        return name in self.files

    def write(self, name: str, data: bytes, *, durable: bool = True) -> None:
        self.files[name] = data

    def read(self, name: str) -> bytes | None:
        return self.files.get(name)

    def delete(self, name: str) -> None:
        self.files.pop(name, None)

    def sync(self) -> None:
        pass


def verify(data: bytes, detached: bytes | None) -> VerifiedArtifact:
    """An artifact is ``name@version`` here; the signature checks are another test's."""
    name, _, version = data.decode().partition("@")
    manifest = parse_manifest_obj({"name": name, "version": version, "abi": 1})
    return VerifiedArtifact(manifest, hashlib.sha256(data).hexdigest(), data, ("k",), True)


@dataclass
class FullableAudit(RecordingAudit):
    """The audit sink whose disk can be full (``full``): records fail as the trail's do."""

    full: bool = False

    def record(self, event: AuditEvent) -> None:
        if self.full:
            raise AuditUnavailableError("cannot write the audit log: No space left on device")
        super().record(event)


class World:
    def __init__(self, gate: AuditGate | None = None) -> None:
        self.files = MemoryFiles()
        self.state = MemoryState()
        self.audit = FullableAudit()
        self.posted: list[Callable[[], None]] = []
        stats = DaemonStats()
        self.active = ActiveSet(self.state, MemoryKept())
        directory = PluginDirectory(self.files, verify, 1 << 20)
        self.plugins = PluginTable(self._host)
        swapper = Swapper(FakeLoader(), self.active, self.audit, stats, ManualClock(), 1.0)
        self.reconciler = Reconciler(
            swapper, directory, self.active, self.audit, stats, ManualClock(), RestartPolicy(),
            self.plugins, RejectionReport(self.audit, stats), self.posted.append, gate=gate,
        )  # fmt: skip
        self.ops = PluginOperations(
            self.reconciler, self.plugins, directory, self.active, self.audit, gate
        )

    @staticmethod
    def _host(name: str, stats: PluginStats, on_fault: OnFault) -> PluginHost:
        return PluginHost(name, stats, 1.0, on_fault, ManualClock())

    def names(self) -> list[EventName]:
        return self.audit.names()

    def events(self, name: EventName) -> list[tuple[str | None, str | None, str | None]]:
        return [(e.plugin, e.version, e.actor) for e in self.audit.events if e.event is name]


def test_add_installs_and_the_install_is_audited_with_its_actor() -> None:
    w = World()
    w.ops.add("hello.wasm", b"hello@1.0.0", "alice")
    assert w.ops.view("hello").state == "running"
    assert w.events(EventName.PLUGIN_INSTALLED) == [("hello", "1.0.0", "alice")]
    assert w.state.state.active["hello"].source == "hello.wasm"


def test_remove_by_name_deletes_every_file_of_the_plugin() -> None:
    w = World()
    w.ops.add("hello.wasm", b"hello@1.0.0")
    w.ops.add("other.wasm", b"other@1.0.0")
    w.ops.remove("hello", "bob")
    assert w.files.names() == ["other.wasm"]
    assert [v.name for v in w.ops.views()] == ["other"]
    assert w.events(EventName.PLUGIN_REMOVED) == [("hello", "1.0.0", "bob")]
    assert "hello" not in w.state.state.active
    with pytest.raises(NotFoundError):
        w.ops.remove("hello", "bob")


def test_a_withdrawal_that_cannot_be_recorded_puts_the_plugin_back() -> None:
    w = World()
    w.ops.add("hello.wasm", b"hello@1.0.0")
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
    w.ops.add("hello.wasm", b"hello@1.0.0")
    w.ops.withdraw_untrusted(lambda sha256: None)
    assert w.plugins.host("hello").state is State.RUNNING
    assert w.events(EventName.PLUGIN_REJECTED) == []


def test_allow_downgrade_records_who_allowed_it_and_tries_at_once() -> None:
    w = World()
    w.ops.add("hello.wasm", b"hello@2.0.0")
    w.reconciler.attempted.add(("hello", "sha-of-a-refused-1.0.0"))
    w.ops.allow_downgrade("hello", "1.0.0", "admin")
    assert w.state.state.overrides["hello"].actor == "admin"
    assert w.reconciler.attempted == set()  # the refused bytes are tried again


def test_pause_resume_and_reset_are_audited_with_their_actor() -> None:
    w = World()
    w.ops.add("hello.wasm", b"hello@1.0.0")
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
    w.ops.add("hello.wasm", b"hello@1.0.0", "alice")
    w.ops.add("paused.wasm", b"paused@1.0.0", "alice")
    w.ops.pause("paused", "ops")
    before = (w.files.names(), w.state.state, len(w.audit.events))
    w.audit.full = True
    refused: list[Callable[[], None]] = [
        lambda: w.ops.add("new.wasm", b"new@1.0.0", "alice", plugin="new", version="1.0.0"),
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
    w.ops.add("hello.wasm", b"hello@1.0.0", "alice", plugin="hello", version="1.0.0")
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
    w.ops.add("hello.wasm", b"hello@1.0.0")
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
