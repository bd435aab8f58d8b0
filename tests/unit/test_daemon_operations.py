"""The plugin operations and the reconciler over fakes of their ports: plugins.d, the state
file and the kept copies in memory, the swap ports faked (no wasm, no disk)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from daemon_fakes import FakeLoader, RecordingAudit

from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.artifact_file import ArtifactFile, FileKey, Identity
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.manifest import parse_manifest_obj
from forgeoned.core.state import DaemonState
from forgeoned.core.stats import DaemonStats, PluginStats
from forgeoned.core.supervisor import RestartPolicy
from forgeoned.core.swapper import Swapper
from forgeoned.errors import ConflictError, NotFoundError, SignatureError, StateError
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


class World:
    def __init__(self) -> None:
        self.files = MemoryFiles()
        self.state = MemoryState()
        self.audit = RecordingAudit()
        self.posted: list[Callable[[], None]] = []
        stats = DaemonStats()
        self.active = ActiveSet(self.state, MemoryKept())
        directory = PluginDirectory(self.files, verify, 1 << 20)
        self.plugins = PluginTable(self._host)
        swapper = Swapper(FakeLoader(), self.active, self.audit, stats, ManualClock(), 1.0)
        self.reconciler = Reconciler(
            swapper, directory, self.active, self.audit, stats, ManualClock(), RestartPolicy(),
            self.plugins, RejectionReport(self.audit, stats), self.posted.append,
        )  # fmt: skip
        self.ops = PluginOperations(
            self.reconciler, self.plugins, directory, self.active, self.audit
        )

    @staticmethod
    def _host(name: str, stats: PluginStats, on_fault: OnFault) -> PluginHost:
        return PluginHost(name, stats, 1.0, on_fault, ManualClock())

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
