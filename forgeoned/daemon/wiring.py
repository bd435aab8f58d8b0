"""Building the daemon's parts from its configuration (adapters wired to the core).

:func:`build_parts` returns :class:`~forgeoned.daemon.parts.Parts`, a plain record of every
component, built and connected, not yet started; the daemon (:mod:`forgeoned.daemon.run`)
holds it and runs the loop. Behaviour lives in named collaborators, not here: the artifact
source and verifier, the host-services factory, the reconciler and the plugin operations.

Kept apart from the loop so that tests and benchmarks can build a daemon in-process.
``FORGEONED_FAULT_AT=<step>:<plugin>@<version>`` (a :class:`~forgeoned.core.swapper.Step`
value) makes the process SIGKILL itself when that swap reaches that step: the crash-safety
tests use it; it does nothing unless set.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from forgeoned.adapters.audit.anchor import AnchorKeeper
from forgeoned.adapters.audit.journald import JournaldSink, JournalWriter
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.retention import RetentionPolicy
from forgeoned.adapters.audit.trail import AuditTrail, ConsoleSink
from forgeoned.adapters.crypto.keys import load_trust_dir
from forgeoned.adapters.files.atomic import ensure_dir
from forgeoned.adapters.files.attestations import AttestationFiles
from forgeoned.adapters.files.json_file import JsonFile
from forgeoned.adapters.files.kept import KeptCopiesDir
from forgeoned.adapters.files.observer import DirectoryWatcher
from forgeoned.adapters.files.plugin_files import PluginFilesDir
from forgeoned.adapters.files.review_store import ReviewStore
from forgeoned.adapters.files.state_store import StateStore
from forgeoned.adapters.files.strict_modes import check_trusted_inputs, enforce, owner_actor
from forgeoned.adapters.sdnotify import Notifier
from forgeoned.adapters.wasm.compile_worker import CompileWorkers, ModuleCache, WorkerLimits
from forgeoned.adapters.wasm.loader import PluginLoader
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.adapters.wasm.version import Lifecycle
from forgeoned.core.desired import Candidate
from forgeoned.core.events import AuditEvent
from forgeoned.core.heartbeat import Heartbeat
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.staging_policy import StagingPolicy
from forgeoned.core.stats import DaemonStats, PluginStats
from forgeoned.core.swapper import Step, Swapper
from forgeoned.core.trust import Mode, TrustPolicy
from forgeoned.daemon.config import Config
from forgeoned.daemon.host_services import HostServicesFactory, credentials_dir
from forgeoned.daemon.parts import Parts
from forgeoned.errors import ForgeonedError, StateError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.artifact_source import ArtifactSource, ArtifactVerifier
from forgeoned.service.audit_batch import AuditBatch
from forgeoned.service.chain_watch import ChainWatch
from forgeoned.service.evidence import StagingEvidence
from forgeoned.service.operations import PluginOperations
from forgeoned.service.plugin_host import OnFault, PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import HostFactory, PluginTable
from forgeoned.service.reconciler import Reconciler
from forgeoned.service.refusals import Refusals
from forgeoned.service.rejections import RejectionReport
from forgeoned.service.restarts import RestartSchedule
from forgeoned.service.retirer import Retirer
from forgeoned.service.reviews import Reviews
from forgeoned.service.sources import Fetcher, SourceFollower
from forgeoned.service.staging import Attestations
from forgeoned.service.ticks import TickScheduler

log = logging.getLogger("forgeoned")
Post = Callable[[Callable[[], None]], None]
FaultHook = Callable[[Step, Candidate], None]
Observer = Callable[[AuditEvent], None]


def fault_hook_from_env() -> FaultHook | None:
    """``FORGEONED_FAULT_AT=<step>:<plugin>@<version>``: SIGKILL at that step of that swap."""
    wanted = os.environ.get("FORGEONED_FAULT_AT")
    if not wanted:
        return None
    step_name, _, target = wanted.partition(":")
    step = Step(step_name)
    name, _, version = target.partition("@")

    def hook(at: Step, cand: Candidate) -> None:
        if at is step and cand.name == name and cand.version == version:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def load_trust(config: Config, audit: AuditSink) -> TrustPolicy:
    """The trust store, once it, the config file and the credentials pass StrictModes
    (refused, or in development mode warned about, with a ``config.insecure`` event)."""
    found = check_trusted_inputs(
        config.path,
        config.trust_dir,
        credentials_dir(config),
        plugin_config_dir=config.plugin_config_dir,
    )
    enforce(found, audit, development=config.development)
    return load_trust_dir(config.trust_dir, config.trust)


def _fetchers(config: Config, verifier: ArtifactVerifier, clock: Clock) -> list[Fetcher]:
    """One OCI fetcher per configured source; the OCI client (httpx) is loaded only then."""
    if not config.sources:
        return []
    from forgeoned.adapters.oci.fetch import OciFetcher

    return [
        OciFetcher(s, config.plugins_dir, credentials_dir(config),
                   lambda data, attestation: verifier(data, None, attestation), clock)
        for s in config.sources
    ]  # fmt: skip


def build_parts(
    config: Config,
    clock: Clock,
    post: Post,
    on_files: Callable[[set[str]], None],
    fault: FaultHook | None = None,
    observer: Observer | None = None,
) -> Parts:
    """``post`` runs a closure on the daemon loop later; ``on_files`` is told (on the
    watcher's thread) which plugins.d names may have changed; ``observer`` is told of every
    audit event once it is recorded (the in-process test kit waits on it)."""
    stats = DaemonStats()
    notifier = Notifier()
    for d in (config.state_dir, config.cache_dir, config.plugins_dir):
        ensure_dir(d)
    store = StateStore(config.state_dir)
    retention = RetentionPolicy(config.audit_retain_files, config.audit_archive_dir)
    audit_log = AuditLog(config.effective_audit_dir, clock, retention=retention,
                         rotate_bytes=config.audit_rotate_bytes)  # fmt: skip
    journal = JournalWriter(stats) if config.audit_journald else None
    sink = JournaldSink(journal) if journal is not None else ConsoleSink()
    trail = AuditTrail(audit_log, sink, stats)
    # What the disk refused: the trail counts it; the reconciler and the plugin operations
    # change nothing without a record (the gate); the metrics and the status line show it.
    gate = trail.outage
    anchor = AnchorKeeper(store, audit_log, trail, gate)
    anchor.start()  # a log cut short, gone or started over is an audit.gap from the start
    plugins = PluginTable(_host_factory(config, clock, heartbeat_of(notifier)))
    # ``services.config`` is the config in force (a reload replaces it); read at each use
    review_store = ReviewStore(config.state_dir)
    reviews = Reviews(review_store.load(), review_store.save, clock,
                      lambda: services.config.staging.review_interval_days)  # fmt: skip
    evidence = _staging_evidence(config, clock, plugins, lambda: services.config.staging)
    told = [reviews.observe] + ([evidence.observe] if evidence is not None else [])
    audit: AuditSink = _Observed(trail, [*told, *([observer] if observer else [])])
    try:  # after the audit trail exists: a refused start is audited
        trust = load_trust(config, audit)
    except ForgeonedError:
        trail.close()
        if journal is not None:
            journal.close()
        raise
    attest = Attestations(config.staging, trust, AttestationFiles(config.plugins_dir))
    verifier = ArtifactVerifier(trust, config.mode, config.limits, clock, attest)
    events = AuditBatch(audit)
    # the watchdog, fed by the loop's bounded waits (drains, lifecycle calls, compiles)
    heartbeat = heartbeat_of(notifier)
    runtime = WasmtimeRuntime()
    cl = config.compile
    limits = WorkerLimits(cl.cpu_seconds, cl.memory_bytes, cl.timeout_s, cl.workers)
    workers = CompileWorkers(limits, ModuleCache(config.cache_dir, cl.cache_max_bytes))
    if heartbeat is not None:
        workers.heartbeat = notifier.watchdog
    active = ActiveSet(store, KeptCopiesDir(config.state_dir / "artifacts"))
    files = PluginFilesDir(config.plugins_dir)
    directory = PluginDirectory(files, verifier, config.max_artifact_bytes)
    source = ArtifactSource(verifier, directory, active)
    services = HostServicesFactory(config, audit, clock, plugins.stats_of, journal)
    # the operator's bound on lifecycle calls, read at each call (a reload may change it)
    lifecycle = Lifecycle(lambda: services.config.lifecycle_timeout_s, heartbeat)
    loader = PluginLoader(
        runtime, workers, lambda: active.current, source.fetch, services, events, stats,
        lambda: verifier.ceilings, lifecycle,
    )  # fmt: skip
    retirer = Retirer(audit)  # not the start's batch: it records from threads of its own
    swapper = Swapper(
        loader, active, events, stats, clock, config.drain_timeout_s,
        fault or (lambda step, cand: None), retirer,
    )  # fmt: skip
    reconciler = Reconciler(
        swapper, directory, active, events, stats, clock,
        RestartSchedule(config.restart, clock, events, active), plugins,
        RejectionReport(events, stats), post, Refusals(active, clock),
        prefetch=lambda cands: loader.prefetch(source.ready(cands), cl.workers), gate=gate,
    )  # fmt: skip
    watcher = DirectoryWatcher(
        config.plugins_dir, on_files, debounce_s=config.debounce_ms / 1000, clock=clock
    )
    directory.writing = watcher.is_writing
    directory.describe_owner = owner_actor  # plugins.d changes audited as their owner's
    return Parts(
        stats=stats, notifier=notifier, audit_log=audit_log, journal=journal, trail=trail,
        anchor=anchor, audit=audit, events=events,
        chain=ChainWatch(audit_log, config.audit_verify_interval_s,
                         config.audit_full_verify_every),
        runtime=runtime, workers=workers, active=active, verifier=verifier,
        directory=directory, source=source, services=services, loader=loader,
        swapper=swapper, plugins=plugins, retirer=retirer, reconciler=reconciler,
        operations=PluginOperations(reconciler, plugins, directory, active, events, gate),
        watcher=watcher, ticks=TickScheduler(plugins.all, clock), reviews=reviews,
        evidence=evidence,
        sources=SourceFollower(_fetchers(config, verifier, clock), audit, clock, gate),
    )  # fmt: skip


EVIDENCE_FILE = "staging-evidence.json"


def _staging_evidence(
    config: Config, clock: Clock, plugins: PluginTable, staging: Callable[[], StagingPolicy]
) -> StagingEvidence | None:
    """A staging daemon's evidence (what promote signs), carried on from STATE; None when
    ``mode`` is not staging."""
    if config.mode is not Mode.STAGING:
        return None
    saved = JsonFile(config.state_dir / EVIDENCE_FILE)
    return StagingEvidence(clock, plugins.stats_of, staging, _saved_evidence(saved), saved.save)


def _saved_evidence(file: JsonFile) -> dict[str, dict[str, Any]]:
    """What an earlier staging daemon saved; an unreadable file is logged and ignored (the
    evidence starts again: promote then needs new calls and time, never less)."""
    try:
        raw = file.load()
    except StateError as exc:
        log.warning("staging evidence of an earlier run ignored: %s", exc)
        return {}
    return (
        {str(k): v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}
    )


def heartbeat_of(notifier: Notifier) -> Heartbeat | None:
    """The watchdog, fed by the loop's bounded waits (drains, lifecycle calls, compiles)."""
    return notifier if notifier.watchdog_interval() is not None else None


class _Observed:
    """An AuditSink that tells each of ``observers`` of each event ``inner`` recorded."""

    def __init__(self, inner: AuditSink, observers: list[Observer]) -> None:
        self._inner = inner
        self._observers = observers

    def record(self, event: AuditEvent) -> None:
        self._inner.record(event)
        for observer in self._observers:
            observer(event)


def _host_factory(config: Config, clock: Clock, heartbeat: Heartbeat | None) -> HostFactory:
    def make_host(name: str, stats: PluginStats, on_fault: OnFault) -> PluginHost:
        return PluginHost(name, stats, config.call_hold_timeout_s, on_fault, clock, heartbeat)

    return make_host
