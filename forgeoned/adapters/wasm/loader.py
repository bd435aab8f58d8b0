"""Loading a plugin version: verified bytes → compiled module → initialised instances.

:class:`PluginLoader` is the swapper's :class:`~forgeoned.core.swap_ports.Loader` over the
real runtime (its steps pass :class:`Verified` then :class:`Compiled` along);
:class:`LoadedVersion` is one :class:`~forgeoned.core.swap_ports.Version` with
``limits.instances`` wasmtime Stores, handed out to one thread at a time by a small pool.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

from forgeoned.adapters.wasm.compile_worker import CompileWorkers
from forgeoned.adapters.wasm.hostabi import HostServices
from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.runtime import CompiledModule, WasmtimeRuntime
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.ceilings import CeilingPolicy, check_code_size
from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.manifest import Manifest
from forgeoned.core.ports import AuditSink
from forgeoned.core.rollback import Verdict, check_rollback
from forgeoned.core.state import ActiveRecord, DaemonState, KeptVersion
from forgeoned.core.stats import DaemonStats
from forgeoned.core.swap_ports import Instance
from forgeoned.errors import ArtifactError, ForgeonedError, LoadError, PluginFault


@dataclass(frozen=True, slots=True)
class Verified:
    candidate: Candidate
    artifact: VerifiedArtifact
    verdict: Verdict
    detached: bytes | None = None
    allowed_by: str | None = None  # the admin whose override lets this downgrade through


@dataclass(frozen=True, slots=True)
class Compiled:
    verified: Verified
    module: CompiledModule


class LoadedVersion:
    """One version of a plugin: its instances, its module (to revive it) and its metadata."""

    def __init__(
        self,
        compiled: Compiled,
        instances: list[PluginInstance],
        revive: Callable[[Compiled], LoadedVersion],
    ) -> None:
        self.compiled = compiled
        self.instances = instances
        self._revive = revive
        self._idle: SimpleQueue[Instance] = SimpleQueue()
        for inst in instances:
            self._idle.put(inst)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def manifest(self) -> Manifest:
        return self.compiled.verified.artifact.manifest

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def sha256(self) -> str:
        return self.compiled.verified.artifact.sha256

    @property
    def signers(self) -> tuple[str, ...]:
        return self.compiled.verified.artifact.signers

    @property
    def limits(self) -> dict[str, int]:
        return self.manifest.limits.to_json()

    @property
    def instance_count(self) -> int:
        return len(self.instances)

    @property
    def memory_bytes(self) -> int:
        return sum(i.memory_bytes for i in self.instances)

    @property
    def tick_interval_s(self) -> float:
        if not self.compiled.module.has_tick:
            return 0.0
        return self.manifest.tick_interval_ms / 1000.0

    @property
    def kept(self) -> KeptVersion:
        verified = self.compiled.verified
        art = verified.artifact
        record = ActiveRecord(art.manifest.version, art.sha256, verified.candidate.filename)
        return KeptVersion(record, art.module, verified.detached)

    def revive(self) -> LoadedVersion:
        return self._revive(self.compiled)

    def _each(self, export: LifecycleExport) -> None:
        for inst in self.instances:
            inst.call(export)

    def init(self) -> None:
        self._each(LifecycleExport.INIT)

    def start(self) -> None:
        self._each(LifecycleExport.START)

    def pause(self) -> None:
        self._each(LifecycleExport.PAUSE)

    def resume(self) -> None:
        self._each(LifecycleExport.RESUME)

    def shutdown(self) -> None:
        """stop + unload on every instance (a failing one does not stop the others), then free."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for inst in self.instances:
            for export in (LifecycleExport.STOP, LifecycleExport.UNLOAD):
                with contextlib.suppress(ForgeonedError):
                    inst.call(export)
            inst.close()

    def close(self) -> None:
        """Free the instances without calling any export (a version that never started)."""
        with self._lock:
            self._closed = True
        for inst in self.instances:
            inst.close()

    def acquire(self, timeout: float) -> Instance | None:
        try:
            return self._idle.get(timeout=timeout)
        except Empty:
            return None

    def give_back(self, instance: Instance) -> None:
        self._idle.put(instance)

    def interrupt(self) -> None:
        for inst in self.instances:
            inst.interrupt()


ServicesFactory = Callable[[Manifest], HostServices]
Source = Callable[[Candidate], tuple[VerifiedArtifact, bytes | None]]


class PluginLoader:
    """verify (+ rollback floor) → compile (bounded worker, cache) → instantiate + init."""

    def __init__(
        self,
        runtime: WasmtimeRuntime,
        workers: CompileWorkers,
        state: Callable[[], DaemonState],
        source: Source,
        services: ServicesFactory,
        audit: AuditSink,
        stats: DaemonStats,
        ceilings: Callable[[], CeilingPolicy] = CeilingPolicy,
    ) -> None:
        self.runtime = runtime
        self.ceilings = ceilings  # the operator's, read at each load (a reload may change them)
        self.workers = workers
        self.state = state
        self.source = source
        self.services = services
        self.audit = audit
        self.stats = stats
        self._ready: dict[str, CompiledModule] = {}  # prefetched, by sha256
        self._ready_lock = threading.Lock()

    def verify(self, candidate: Candidate) -> Verified:
        artifact, detached = self.source(candidate)
        m = artifact.manifest
        if (m.name, m.version, artifact.sha256) != (
            candidate.name,
            candidate.version,
            candidate.sha256,
        ):
            raise ArtifactError(f"{candidate.filename}: changed while it was being loaded")
        st = self.state()
        active = st.active.get(m.name)
        verdict = check_rollback(
            m.name, m.version, artifact.sha256, st.floors, st.overrides,
            active.sha256 if active is not None else None,
        )  # fmt: skip
        override = st.overrides.get(m.name) if verdict is Verdict.OVERRIDDEN else None
        allowed_by = override.actor if override is not None else None
        return Verified(candidate, artifact, verdict, detached, allowed_by)

    def details(self, verified: Verified) -> dict[str, Any]:
        """The signature facts audit events carry (the compliance report reads them)."""
        art = verified.artifact
        return {"signers": list(art.signers), "signed": art.signed}

    def _module(self, art: VerifiedArtifact) -> CompiledModule:
        payload = self.workers.compile(art.module, art.sha256)
        # the serialized module is the native code wasmtime will map: a fair measure of it
        check_code_size(self.ceilings(), art.manifest, len(payload))
        try:
            module = self.runtime.deserialize(payload)
        except LoadError:
            if self.workers.cache is not None:
                self.workers.cache.drop(art.sha256)  # a corrupt cache entry: compile again
            module = self.runtime.deserialize(self.workers.compile(art.module, art.sha256))
        return module

    def prefetch(self, artifacts: list[VerifiedArtifact], threads: int) -> None:
        """Compile (or load from the cache) many modules in parallel ahead of their swaps;
        failures are left for the swap itself to meet and report."""
        with self._ready_lock:
            self._ready.clear()  # leftovers of candidates that were not swapped after all

        def one(art: VerifiedArtifact) -> None:
            try:
                module = self._module(art)
            except ForgeonedError:
                return
            with self._ready_lock:
                self._ready[art.sha256] = module

        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="forgeoned-prefetch") as ex:
            list(ex.map(one, artifacts))

    def compile(self, verified: Verified) -> Compiled:
        art = verified.artifact
        with self._ready_lock:
            module = self._ready.pop(art.sha256, None)
        return Compiled(verified, module if module is not None else self._module(art))

    def instantiate(self, compiled: Compiled) -> LoadedVersion:
        art = compiled.verified.artifact
        services = self.services(art.manifest)
        instances: list[PluginInstance] = []
        try:
            limits = art.manifest.limits
            for _ in range(limits.instances):
                instances.append(self.runtime.instantiate(compiled.module, limits, services))
            version = LoadedVersion(compiled, instances, self.instantiate)
            version.init()
        except (LoadError, PluginFault):
            for inst in instances:
                inst.close()
            raise
        self._audit_special(compiled.verified)
        return version

    def _audit_special(self, verified: Verified) -> None:
        art, name = verified.artifact, verified.candidate.name
        if not art.signed:
            self.stats.unsigned_loaded += 1
            self.audit.record(
                AuditEvent(
                    EventName.PLUGIN_UNSIGNED_LOADED,
                    plugin=name,
                    version=art.manifest.version,
                    sha256=art.sha256,
                    reason=art.dev_reason.value if art.dev_reason is not None else None,
                    message="development mode: loading an artifact production would reject",
                )
            )
        if verified.verdict is Verdict.OVERRIDDEN:
            self.audit.record(
                AuditEvent(
                    EventName.PLUGIN_DOWNGRADE_ALLOWED,
                    plugin=name,
                    version=art.manifest.version,
                    sha256=art.sha256,
                    actor=verified.allowed_by,
                    reason="downgrade",
                )
            )
