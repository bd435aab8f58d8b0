"""A daemon's service layer over fakes of its ports, for unit tests: plugins.d, the state file
and the kept copies in memory, the swap ports faked (no wasm, no disk). An artifact is the
bytes ``name@version``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from daemon_fakes import FakeLoader, RecordingAudit

from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.artifact_file import ArtifactFile, FileKey, Identity
from forgeoned.core.clock import ManualClock
from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.manifest_parse import parse_manifest_obj
from forgeoned.core.ports import AuditGate, InstallReport
from forgeoned.core.state import DaemonState
from forgeoned.core.stats import DaemonStats, PluginStats
from forgeoned.core.supervisor import RestartPolicy
from forgeoned.core.swapper import Swapper
from forgeoned.errors import AuditUnavailableError, StateError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.operations import PluginOperations
from forgeoned.service.plugin_host import OnFault, PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.reconciler import Reconciler
from forgeoned.service.refusals import Refusals
from forgeoned.service.rejections import RejectionReport
from forgeoned.service.restarts import RestartSchedule


@dataclass
class MemoryFiles:
    """plugins.d in memory (the PluginFiles port); a write is a new identity."""

    files: dict[str, tuple[bytes, Identity]] = field(default_factory=dict)
    writes: int = 0

    def names(self) -> list[str]:
        return sorted(self.files)

    def key(self, name: str) -> FileKey | None:
        found = self.files.get(name)
        return (found[1], None, None) if found is not None else None

    def read(self, name: str, max_bytes: int) -> ArtifactFile:
        if name not in self.files:
            raise FileNotFoundError(name)
        data, ident = self.files[name]
        return ArtifactFile(data, None, ident)

    def write(self, name: str, data: bytes, detached: bytes | None = None) -> None:
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
    def __init__(
        self,
        policy: RestartPolicy | None = None,
        after: World | None = None,
        gate: AuditGate | None = None,
    ) -> None:
        """``after``: a daemon started again on what ``after`` left (files, state, copies)."""
        self.files: MemoryFiles = after.files if after is not None else MemoryFiles()
        self.state: MemoryState = MemoryState(
            after.state.state if after is not None else DaemonState()
        )
        self.kept: MemoryKept = after.kept if after is not None else MemoryKept()
        self.audit = FullableAudit()
        self.posted: list[Callable[[], None]] = []
        self.clock = ManualClock()
        self.stats = stats = DaemonStats()
        self.active = ActiveSet(self.state, self.kept)
        self.directory = directory = PluginDirectory(self.files, verify, 1 << 20)
        self.plugins = PluginTable(self._host)
        self.loader = FakeLoader()
        swapper = Swapper(self.loader, self.active, self.audit, stats, self.clock, 1.0)
        restarts = RestartSchedule(
            policy or RestartPolicy(jitter=0), self.clock, self.audit, self.active
        )
        self.reconciler = Reconciler(
            swapper, directory, self.active, self.audit, stats, self.clock, restarts,
            self.plugins, RejectionReport(self.audit, stats), self.posted.append,
            Refusals(self.active, self.clock), gate=gate,
        )  # fmt: skip
        self.ops = PluginOperations(
            self.reconciler, self.plugins, directory, self.active, self.audit, gate
        )

    def add(self, filename: str, data: bytes, actor: str | None = None) -> InstallReport:
        """An install of an (already verified) upload, as the control API makes it."""
        art = verify(data, None)
        m = art.manifest
        return self.ops.install(
            Candidate(m.name, m.version, art.sha256, filename), data, None, actor
        )

    def drop(self, filename: str, data: bytes) -> None:
        """A file written into plugins.d by hand, and reported by the watcher."""
        self.files.write(filename, data)
        self.reconciler.files_changed({filename})

    def run_posted(self) -> None:
        posted, self.posted[:] = list(self.posted), []
        for job in posted:
            job()

    def start(self) -> None:
        """What the daemon does before READY=1."""
        self.reconciler.rescan(reconcile=False)
        self.reconciler.start_persisted()
        self.reconciler.reconcile(None)

    @staticmethod
    def _host(name: str, stats: PluginStats, on_fault: OnFault) -> PluginHost:
        return PluginHost(name, stats, 1.0, on_fault, ManualClock())

    def names(self) -> list[EventName]:
        return self.audit.names()

    def events(self, name: EventName) -> list[tuple[str | None, str | None, str | None]]:
        return [(e.plugin, e.version, e.actor) for e in self.audit.events if e.event is name]
