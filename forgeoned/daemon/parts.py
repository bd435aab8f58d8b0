"""The daemon's parts: :class:`Parts`, a plain record of every component, built and connected
by :func:`~forgeoned.daemon.wiring.build_parts`, and what the daemon reads and does over the
whole record: the status line (sd_notify ``STATUS=``), the compile cache's trim, the close.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from forgeoned.adapters.audit.anchor import AnchorKeeper
from forgeoned.adapters.audit.journald import JournalWriter
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.files.observer import DirectoryWatcher
from forgeoned.adapters.sdnotify import Notifier
from forgeoned.adapters.wasm.compile_worker import CompileWorkers
from forgeoned.adapters.wasm.loader import PluginLoader
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.adapters.wasm.version import Compiled, Verified
from forgeoned.core.audit_chain import rfc3339
from forgeoned.core.lifecycle import State
from forgeoned.core.ports import AuditSink
from forgeoned.core.stats import DaemonStats
from forgeoned.core.swapper import Swapper
from forgeoned.daemon.host_services import HostServicesFactory
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.artifact_source import ArtifactSource, ArtifactVerifier
from forgeoned.service.audit_batch import AuditBatch
from forgeoned.service.chain_watch import ChainWatch, describe
from forgeoned.service.evidence import StagingEvidence
from forgeoned.service.operations import PluginOperations
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.reconciler import Reconciler
from forgeoned.service.retirer import Retirer
from forgeoned.service.reviews import Reviews
from forgeoned.service.sources import SourceFollower
from forgeoned.service.ticks import TickScheduler


@dataclass(frozen=True, slots=True)
class Parts:
    """Every component of a daemon, built and connected, not yet started."""

    stats: DaemonStats
    notifier: Notifier
    audit_log: AuditLog
    journal: JournalWriter | None
    trail: AuditTrail  # the audit log, then journald
    anchor: AnchorKeeper  # where the audit log had got to, in state.json
    audit: AuditSink  # what everything records through (the trail, observed if asked)
    events: AuditBatch  # swaps and rejections (held during the start)
    chain: ChainWatch
    runtime: WasmtimeRuntime
    workers: CompileWorkers
    active: ActiveSet
    verifier: ArtifactVerifier
    directory: PluginDirectory
    source: ArtifactSource
    services: HostServicesFactory
    loader: PluginLoader
    swapper: Swapper[Verified, Compiled]
    plugins: PluginTable
    retirer: Retirer  # stops and unloads versions that left service, off the loop
    reconciler: Reconciler
    operations: PluginOperations
    watcher: DirectoryWatcher
    ticks: TickScheduler
    reviews: Reviews  # when each plugin's review is due (fed by the audit trail)
    evidence: StagingEvidence | None  # mode = "staging": what promote signs
    sources: SourceFollower  # OCI sources: threads of their own, writing into plugins.d


def status_line(parts: Parts) -> str:
    """sd_notify's ``STATUS=``: the plugins by state, a broken audit chain, an audit outage."""
    counts = parts.plugins.state_counts()
    line = (
        f"{plugins(counts[State.RUNNING])} running, {counts[State.FAILED]} failed, "
        f"{counts[State.QUARANTINED]} quarantined"
    )
    chain = parts.chain.last
    line = line if chain is None or chain.ok else f"{line}; {describe(chain)}"
    outage = parts.trail.outage.view()
    if outage.since is None:
        return line
    since = rfc3339(outage.since)
    return f"DEGRADED: audit log not writable since {since}, changes refused; {line}"


def plugins(count: int) -> str:
    """``1 plugin``, ``2 plugins``, ``0 plugins``."""
    return f"{count} plugin" if count == 1 else f"{count} plugins"


def trim_compile_cache(parts: Parts) -> None:
    """Keep the compile cache under its cap: evict what no active, running or candidate
    (plugins.d) version uses. Cheap unless over the cap; runs on the daemon loop."""
    cache = parts.workers.cache
    if cache is None:
        return

    def in_use() -> set[str]:
        used = {record.sha256 for record in parts.active.current.active.values()}
        used.update(parts.plugins.running().values())
        used.update(c.sha256 for c in parts.directory.candidates())
        return used

    cache.trim(in_use)


def close_parts(parts: Parts) -> None:
    """Free everything (after the inputs were closed and the plugins stopped)."""
    if parts.evidence is not None:
        parts.evidence.save_all()
    parts.workers.close()
    parts.services.close()
    parts.runtime.close()
    with contextlib.suppress(Exception):
        parts.trail.close()
    if parts.journal is not None:
        parts.journal.close()
    parts.notifier.close()
