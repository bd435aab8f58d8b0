"""One loaded plugin version: its instances, the pool that hands them out, its lifecycle calls.

:class:`LoadedVersion` is the :class:`~forgeoned.core.swap_ports.Version` the swapper, the
plugin host and the tick scheduler work with. Its lifecycle exports follow the semantics in
docs/plugin-authoring.md:

* ``init``/``start``: a non-zero status or a trap raises (the swapper rolls back);
* ``pause``/``resume``: a non-zero status is the plugin's refusal, an
  :class:`~forgeoned.errors.ApplicationError`, after the instances that had already paused
  (resumed) are resumed (paused) again, so that all of them are as they were;
* ``stop``/``unload``: whatever they answer, the instance is freed; :meth:`shutdown` returns
  what failed for the caller to audit.

Every call after ``init`` is bounded by the operator's ``lifecycle_timeout_s`` as well as the
manifest's ``call_timeout_ms`` (the shorter wins). The daemon loop calls ``init``, ``start``,
``pause`` and ``resume``; with a watchdog (:class:`Lifecycle` has a heartbeat) they run on a
helper thread while the loop waits beating it, so a slow one never starves ``WATCHDOG=1``.
``shutdown`` runs on a retirer's thread, never on the loop.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.runtime import CompiledModule
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.desired import Candidate
from forgeoned.core.heartbeat import Heartbeat, wait_beating
from forgeoned.core.manifest import Manifest
from forgeoned.core.rollback import Verdict
from forgeoned.core.state import ActiveRecord, KeptVersion
from forgeoned.core.swap_ports import Instance, ShutdownFault
from forgeoned.errors import ApplicationError, ForgeonedError, PluginFault, PluginStatusError

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_LIFECYCLE_TIMEOUT_S = 5.0
# what turns an instance back after a refusal of the others (see LoadedVersion._each)
UNDO = {
    LifecycleExport.PAUSE: LifecycleExport.RESUME,
    LifecycleExport.RESUME: LifecycleExport.PAUSE,
}


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


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """How lifecycle exports run here: ``bound_s()`` is the operator's bound on each call
    after ``init`` (read at each call: a reload may change it); ``heartbeat`` is fed while the
    calling thread waits for one (None: the call runs on the caller's thread)."""

    bound_s: Callable[[], float] = field(default=lambda: DEFAULT_LIFECYCLE_TIMEOUT_S)
    heartbeat: Heartbeat | None = None

    def run(self, job: Callable[[], T]) -> T:
        """``job()``, on a helper thread if there is a watchdog to feed meanwhile."""
        beat = self.heartbeat
        if beat is None or beat.interval_s is None:
            return job()
        out: list[T] = []
        failed: list[BaseException] = []

        def work() -> None:
            try:
                out.append(job())
            except BaseException as exc:  # raised again in the caller's thread
                failed.append(exc)

        thread = threading.Thread(target=work, name="forgeoned-lifecycle", daemon=True)
        thread.start()

        def ended(seconds: float) -> bool:
            thread.join(seconds)
            return not thread.is_alive()

        wait_beating(ended, math.inf, beat)  # bounded by the call's own deadline
        if failed:
            raise failed[0]
        return out[0]


class LoadedVersion:
    """One version of a plugin: its instances, its module (to revive it) and its metadata."""

    def __init__(
        self,
        compiled: Compiled,
        instances: list[PluginInstance],
        revive: Callable[[Compiled], LoadedVersion],
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.compiled = compiled
        self.instances = instances
        self.call_timeout_s = compiled.verified.artifact.manifest.limits.call_timeout_ms / 1000.0
        self._revive = revive
        self.lifecycle = lifecycle if lifecycle is not None else Lifecycle()
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
    def capabilities(self) -> dict[str, Any]:
        first = self.instances[0] if self.instances else None
        return first.services.capabilities.to_json() if first is not None else {}

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        return self.manifest.labels

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

    # --- lifecycle exports ------------------------------------------------------------------

    def init(self) -> None:
        """``init`` on every instance, bounded by ``call_timeout_ms`` only (the old version
        still serves meanwhile; the caller already runs it through :class:`Lifecycle`)."""
        for inst in self.instances:
            inst.call(LifecycleExport.INIT)

    def start(self) -> None:
        self.lifecycle.run(lambda: self._each(LifecycleExport.START))

    def pause(self) -> None:
        self.lifecycle.run(lambda: self._each(LifecycleExport.PAUSE))

    def resume(self) -> None:
        self.lifecycle.run(lambda: self._each(LifecycleExport.RESUME))

    def _each(self, export: LifecycleExport) -> None:
        """``export`` on every instance in turn, within the lifecycle bound. For pause and
        resume a non-zero status is a refusal: the instances done so far are turned back."""
        bound = self.lifecycle.bound_s()
        undo = UNDO.get(export)
        for done, inst in enumerate(self.instances):
            try:
                inst.call(export, bound)
            except PluginStatusError as exc:
                if undo is None:
                    raise
                self._undo(undo, self.instances[:done], bound)
                raise ApplicationError(
                    f"plugin {self.manifest.name}: {export.value!r} returned status "
                    f"{exc.status}; it stays as it was",
                    export=export.value,
                    status=exc.status,
                ) from None

    def _undo(self, export: LifecycleExport, instances: list[PluginInstance], bound: float) -> None:
        for inst in instances:
            try:
                inst.call(export, bound)
            except ForgeonedError as exc:  # it refused its own undo: all we can do is say so
                log.warning("plugin %s: %s to undo a refusal failed: %s",
                            self.manifest.name, export.value, exc)  # fmt: skip

    def shutdown(self) -> list[ShutdownFault]:
        """``stop`` then ``unload`` on every instance (a failing one stops nothing else), each
        within the lifecycle bound, then free them; returns what failed. An instance still
        busy with a call after the bound is left alone (never two threads on one Store)."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
        bound = self.lifecycle.bound_s()
        faults: list[ShutdownFault] = []
        for _ in self.instances:
            try:
                inst = self._idle.get(timeout=bound)
                assert isinstance(inst, PluginInstance)
            except Empty:
                log.error(  # noqa: TRY400 (no exception worth a traceback: a timeout)
                    "plugin %s %s: an instance stayed busy; not stopped",
                    self.manifest.name,
                    self.version,
                )
                continue
            for export in (LifecycleExport.STOP, LifecycleExport.UNLOAD):
                try:
                    inst.call(export, bound)
                except PluginFault as exc:
                    faults.append(ShutdownFault(export, exc))
                except ForgeonedError as exc:  # the instance is closed already, say
                    log.warning("plugin %s: %s: %s", self.manifest.name, export.value, exc)
            inst.close()
        return faults

    def close(self) -> None:
        """Free the instances without calling any export (a version that never started)."""
        with self._lock:
            self._closed = True
        for inst in self.instances:
            inst.close()

    # --- the instance pool ------------------------------------------------------------------

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
