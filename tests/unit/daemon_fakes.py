"""Hand-written fakes of the swapper's ports (Loader, Version, Committer) for unit tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.state import ActiveRecord, KeptVersion
from forgeoned.core.swap_ports import Instance, ShutdownFault, Version
from forgeoned.core.swapper import Step
from forgeoned.errors import (
    ForgeonedError,
    PluginStatusError,
    PluginTrap,
    StateError,
    TrapKind,
)


class FakeInstance:
    fuel_consumed = 0

    def __init__(self, version: FakeVersion) -> None:
        self.version = version

    def handle(self, data: bytes, export: str = "handle") -> bytes:
        v = self.version
        v.entered.set()
        if v.block is not None:
            v.block.wait(10)
        if v.interrupted.is_set():
            raise PluginTrap("interrupted", TrapKind.INTERRUPTED, "handle")
        if v.trap:
            raise PluginTrap("unreachable", TrapKind.UNREACHABLE, "handle")
        return f"{v.version}:".encode() + data

    def tick(self) -> None:
        self.version.ticks += 1


@dataclass(eq=False)
class FakeVersion:
    version: str
    sha256: str
    start_error: ForgeonedError | None = None
    trap: bool = False
    block: threading.Event | None = None
    started: int = 0
    shut: int = 0
    paused: int = 0
    resumed: int = 0
    ticks: int = 0
    signers: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)
    capabilities: dict[str, Any] = field(default_factory=dict)
    labels: tuple[tuple[str, str], ...] = ()
    instance_count: int = 1
    memory_bytes: int = 65536
    tick_interval_s: float = 0.0
    call_timeout_s: float = 1.0
    module: bytes = b""
    source: str = ""
    entered: threading.Event = field(default_factory=threading.Event)
    interrupted: threading.Event = field(default_factory=threading.Event)
    revived_from: FakeVersion | None = None
    shutdown_faults: tuple[ShutdownFault, ...] = ()  # what shutdown() reports as failed
    lifecycle_errors: dict[str, ForgeonedError] = field(default_factory=dict)  # pause, resume
    loader: FakeLoader | None = None  # the one that made it (revive fails as it says)

    def __post_init__(self) -> None:
        self._inst = FakeInstance(self)
        self._lock = threading.Lock()

    @property
    def kept(self) -> KeptVersion:
        return KeptVersion(ActiveRecord(self.version, self.sha256, self.source), self.module)

    def revive(self) -> FakeVersion:
        loader = self.loader
        if loader is not None and loader.revive_error is not None:
            raise loader.revive_error
        v = FakeVersion(
            self.version, self.sha256, module=self.module, source=self.source,
            revived_from=self, loader=loader,
        )  # fmt: skip
        if loader is not None:
            loader.made.append(v)
        return v

    def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started += 1

    def shutdown(self) -> list[ShutdownFault]:
        self.shut += 1
        return list(self.shutdown_faults)

    def acquire(self, timeout: float) -> FakeInstance | None:
        return self._inst if self._lock.acquire(timeout=timeout) else None

    def give_back(self, instance: Instance) -> None:
        self._lock.release()

    def interrupt(self) -> None:
        self.interrupted.set()
        if self.block is not None:
            self.block.set()

    def pause(self) -> None:
        if (error := self.lifecycle_errors.pop("pause", None)) is not None:
            raise error
        self.paused += 1

    def resume(self) -> None:
        if (error := self.lifecycle_errors.pop("resume", None)) is not None:
            raise error
        self.resumed += 1


def cand(name: str, version: str, sha: str | None = None, filename: str = "") -> Candidate:
    return Candidate(name, version, sha or f"sha-{name}-{version}", filename or f"{name}.wasm")


@dataclass
class FakeLoader:
    """Fails the steps it is told to fail, for the candidates it is told to."""

    verify_errors: dict[str, ForgeonedError] = field(default_factory=dict)  # by sha
    compile_errors: dict[str, ForgeonedError] = field(default_factory=dict)
    init_errors: dict[str, ForgeonedError] = field(default_factory=dict)
    start_errors: dict[str, ForgeonedError] = field(default_factory=dict)
    revive_error: ForgeonedError | None = None
    made: list[FakeVersion] = field(default_factory=list)

    def verify(self, candidate: Candidate) -> Candidate:
        if candidate.sha256 in self.verify_errors:
            raise self.verify_errors[candidate.sha256]
        return candidate

    def details(self, verified: Candidate) -> dict[str, Any]:
        return {"signers": [f"key-of-{verified.version}"], "signed": True}

    def compile(self, verified: Candidate) -> Candidate:
        if verified.sha256 in self.compile_errors:
            raise self.compile_errors[verified.sha256]
        return verified

    def instantiate(self, compiled: Candidate) -> FakeVersion:
        if compiled.sha256 in self.init_errors:
            raise self.init_errors[compiled.sha256]
        start_error = self.start_errors.get(compiled.sha256)
        v = FakeVersion(
            compiled.version, compiled.sha256, start_error, source=compiled.filename, loader=self
        )
        self.made.append(v)
        return v


@dataclass
class FakeCommitter:
    fail: bool = False
    commits: list[tuple[str, str | None]] = field(default_factory=list)

    def commit(self, name: str, version: Version | None) -> None:
        if self.fail:
            raise StateError("cannot write state.json: No space left on device")
        self.commits.append((name, version.sha256 if version is not None else None))

    def active_sha256(self, name: str) -> str | None:
        mine = [sha for n, sha in self.commits if n == name]
        return mine[-1] if mine else None


@dataclass
class RecordingAudit:
    events: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def names(self) -> list[EventName]:
        return [e.event for e in self.events]


@dataclass
class StepLog:
    steps: list[Step] = field(default_factory=list)

    def __call__(self, step: Step, candidate: Candidate) -> None:
        self.steps.append(step)


INIT_FAILS = PluginStatusError("init", 1)
START_FAILS = PluginStatusError("start", 3)
