"""Loading a plugin version: verified bytes → compiled module → initialised instances.

:class:`PluginLoader` is the swapper's :class:`~forgeoned.core.swap_ports.Loader` over the
real runtime (its steps pass :class:`Verified` then :class:`Compiled` along);
:class:`~forgeoned.adapters.wasm.version.LoadedVersion` is one
:class:`~forgeoned.core.swap_ports.Version` with ``limits.instances`` wasmtime Stores, handed
out to one thread at a time by a small pool. Instantiation and ``init`` run through the
version's :class:`~forgeoned.adapters.wasm.version.Lifecycle` (the watchdog fed meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from forgeoned.adapters.wasm.compile_worker import CompileWorkers
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.module_source import load_module
from forgeoned.adapters.wasm.runtime import CompiledModule, WasmtimeRuntime
from forgeoned.adapters.wasm.version import Compiled, Lifecycle, LoadedVersion, Verified
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.ceilings import CeilingPolicy, check_code_size
from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.manifest import Manifest
from forgeoned.core.module_interface import require_functions
from forgeoned.core.ports import AuditSink
from forgeoned.core.rollback import Verdict, check_rollback
from forgeoned.core.state import DaemonState
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import ArtifactError, ForgeonedError, LoadError, PluginFault

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
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.runtime = runtime
        # how the lifecycle exports run (the operator's bound, the watchdog to feed)
        self.lifecycle = lifecycle if lifecycle is not None else Lifecycle()
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
        ceilings = self.ceilings()

        def admit(code_bytes: int) -> None:
            # the serialized module is the native code wasmtime will map: a fair measure of it
            check_code_size(ceilings, art.manifest, code_bytes)

        return load_module(self.runtime, self.workers, art.module, art.sha256, admit)

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
        module = module if module is not None else self._module(art)
        require_functions(module.interface.exports, art.manifest.functions)
        return Compiled(verified, module)

    def instantiate(self, compiled: Compiled) -> LoadedVersion:
        version = self.lifecycle.run(lambda: self._instantiate(compiled))
        self._audit_special(compiled.verified)
        return version

    def _instantiate(self, compiled: Compiled) -> LoadedVersion:
        """The instances (their start functions run) and their ``init``: plugin code, so
        :meth:`instantiate` runs it through the lifecycle runner (the watchdog fed)."""
        art = compiled.verified.artifact
        services = self.services(art.manifest)
        instances: list[PluginInstance] = []
        try:
            limits = art.manifest.limits
            for _ in range(limits.instances):
                instances.append(self.runtime.instantiate(compiled.module, limits, services))
            version = LoadedVersion(compiled, instances, self.instantiate, self.lifecycle)
            version.init()
        except (LoadError, PluginFault):
            for inst in instances:
                inst.close()
            raise
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
