"""Building the daemon's parts from its configuration (adapters wired to the core).

Kept apart from :mod:`forgeoned.daemon.main` (signals and the loop) so that tests and benchmarks
can build a daemon in-process. ``FORGEONED_FAULT_AT=<step>:<plugin>@<version>`` (a
:class:`~forgeoned.core.swapper.Step` value) makes the process SIGKILL itself when that swap
reaches that step: the crash-safety tests use it; it does nothing unless set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from forgeoned.adapters.audit.journald import JournaldSink, JournalWriter, PluginLogSink
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail, ConsoleSink
from forgeoned.adapters.control.server import ControlServer
from forgeoned.adapters.crypto.keys import load_trust_dir
from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.files.state_store import StateStore
from forgeoned.adapters.files.watcher import DirectoryWatcher
from forgeoned.adapters.metrics.server import MetricsServer
from forgeoned.adapters.sdnotify import Notifier
from forgeoned.adapters.wasm.compile_worker import CompileWorkers, ModuleCache, WorkerLimits
from forgeoned.adapters.wasm.hostabi import HostServices
from forgeoned.adapters.wasm.loader import PluginLoader
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.artifact import VerifiedArtifact, verify_artifact
from forgeoned.core.control_config import parse_control_config
from forgeoned.core.denial_throttle import DenialThrottle
from forgeoned.core.desired import Candidate
from forgeoned.core.manifest import Manifest
from forgeoned.core.ports import Clock
from forgeoned.core.stats import DaemonStats, PluginStats
from forgeoned.core.swapper import Step, Swapper
from forgeoned.core.trust import Mode, TrustPolicy, parse_trust_policy
from forgeoned.daemon.config import Config
from forgeoned.daemon.facade import DaemonBackend
from forgeoned.errors import ArtifactError, StateError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.audit_batch import AuditBatch
from forgeoned.service.chain_watch import ChainWatch
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.reconciler import Reconciler
from forgeoned.service.rejections import RejectionReport
from forgeoned.service.ticks import TickScheduler

log = logging.getLogger("forgeoned")
plugin_log = logging.getLogger("forgeoned.plugin")


def fault_hook_from_env() -> Callable[[Step, Candidate], None] | None:
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


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        raise StateError(f"cannot create {path}: {exc.strerror}") from exc


class Parts:
    """Every component of a daemon, built and connected, not yet started."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        post: Callable[[Callable[[], None]], None],
        fault: Callable[[Step, Candidate], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.post = post
        self.stats = DaemonStats()
        self.notifier = Notifier()
        for d in (config.state_dir, config.cache_dir, config.plugins_dir):
            _mkdir(d)
        self.trust = self._load_trust(config)
        self.audit_log = AuditLog(config.effective_audit_dir, clock)
        self.journal = JournalWriter(self.stats) if config.audit_journald else None
        sink = JournaldSink(self.journal) if self.journal is not None else ConsoleSink()
        self.audit = AuditTrail(self.audit_log, sink, self.stats)
        self.events = AuditBatch(self.audit)  # swaps and rejections (held during the start)
        self.chain = ChainWatch(self.audit_log, config.audit_verify_interval_s)
        self.plugin_stats: dict[str, PluginStats] = {}
        self._journal_log = (
            PluginLogSink(self.journal, self._stats_for, clock) if self.journal else None
        )
        self._kv: dict[str, KvStore] = {}
        # one denial audit budget per plugin name, so restarts and swaps don't refill it
        self._denials: dict[str, DenialThrottle] = {}
        self.runtime = WasmtimeRuntime()
        cl = config.compile
        limits = WorkerLimits(cl.cpu_seconds, cl.memory_bytes, cl.timeout_s, cl.workers)
        self.workers = CompileWorkers(limits, ModuleCache(config.cache_dir))
        if self.notifier.watchdog_interval() is not None:
            self.workers.heartbeat = self.notifier.watchdog
        self.store = StateStore(config.state_dir)
        self.active = ActiveSet(self.store, config.state_dir)
        self.directory = PluginDirectory(
            config.plugins_dir, self.verifier, config.max_artifact_bytes
        )
        self.loader = loader = PluginLoader(
            self.runtime, self.workers, lambda: self.active.current, self._source,
            self._services, self.events, self.stats,
        )  # fmt: skip
        self.swapper = Swapper(
            loader, self.active, self.events, self.stats, clock, config.drain_timeout_s,
            fault or (lambda step, cand: None),
        )  # fmt: skip
        self.reconciler = Reconciler(
            self.swapper, self.directory, self.active, self.events, self.stats, clock,
            config.restart, self._make_host, RejectionReport(self.events, self.stats),
            plugin_stats=self.plugin_stats,
            prefetch=self._prefetch,
        )  # fmt: skip
        self.watcher = DirectoryWatcher(
            config.plugins_dir,
            lambda names: post(lambda: self.files_changed(names, defer=True)),
            debounce_s=config.debounce_ms / 1000,
        )
        self.directory.writing = self.watcher.is_writing
        self.ticks = TickScheduler(lambda: list(self.reconciler.hosts.values()), clock)
        self.backend = DaemonBackend(self)  # type: ignore[arg-type]
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None

    def files_changed(self, names: set[str], defer: bool = False) -> None:  # see Daemon
        self.reconciler.files_changed(names, defer)

    # --- pieces -------------------------------------------------------------------------

    @staticmethod
    def _load_trust(config: Config) -> TrustPolicy:
        return load_trust_dir(config.trust_dir, parse_trust_policy(config.trust or None))

    def verifier(self, data: bytes, detached: bytes | None) -> VerifiedArtifact:
        mode = Mode.DEVELOPMENT if self.config.development else Mode.PRODUCTION
        return verify_artifact(
            data, detached=detached, trust=self.trust, mode=mode, now=self.clock.wall()
        )

    def log_sink(self, plugin: str, level: int, message: str) -> None:
        if self._journal_log is not None:
            self._journal_log(plugin, level, message)
        else:
            plugin_log.log(10 * (level + 1), "%s: %s", plugin, message)

    def _stats_for(self, name: str) -> PluginStats:
        return self.plugin_stats.setdefault(name, PluginStats())

    def _source(self, cand: Candidate) -> tuple[VerifiedArtifact, bytes | None]:
        """The verified artifact for a swap: from the plugins.d index (verified when read),
        else the copy kept in the state directory (verified now)."""
        known = self.directory.known(cand)
        if known is not None:
            return known
        blob = self.active.blob(cand.sha256)
        if blob is None:
            raise ArtifactError(f"{cand.filename}: file is gone or changed since it was read")
        return self.verifier(*blob), blob[1]

    def _prefetch(self, candidates: list[Candidate]) -> None:
        known = [k[0] for c in candidates if (k := self.directory.known(c)) is not None]
        self.loader.prefetch(known, self.config.compile.workers)

    def _kv_for(self, name: str, quota: int | None) -> KvStore | None:
        if quota is None:
            return None
        kv = self._kv.get(name)
        if kv is None:
            kv = self._kv[name] = KvStore(self.config.state_dir / "kv" / name, quota)
        return kv

    def _services(self, manifest: Manifest) -> HostServices:
        name = manifest.name
        caps = manifest.capabilities.narrowed(self.config.policy_for(name))
        allowed = caps.env & set(self.config.plugin_env)
        env = {k: os.environ[k] for k in allowed if k in os.environ}
        creds = self.config.credentials_dir
        if creds is None and os.environ.get("CREDENTIALS_DIRECTORY"):
            creds = Path(os.environ["CREDENTIALS_DIRECTORY"])
        return HostServices(
            plugin=name, version=manifest.version, capabilities=caps, env=env,
            secrets_dir=creds, kv=self._kv_for(name, caps.kv_quota_bytes), audit=self.audit,
            log=self.log_sink, clock=self.clock, stats=self._stats_for(name),
            denials=self._denials.setdefault(name, DenialThrottle()),
        )  # fmt: skip

    def _make_host(self, name: str, stats: PluginStats) -> PluginHost:
        def on_fault(host: PluginHost, version: object, exc: object) -> None:
            self.post(lambda: self.reconciler.fault(host, version, exc))  # type: ignore[arg-type]

        return PluginHost(name, stats, self.config.call_hold_timeout_s, on_fault, self.clock)

    # --- servers and reload -------------------------------------------------------------

    def start_servers(self) -> None:
        if self.config.control.get("enabled", True) is not False:
            raw = {k: v for k, v in self.config.control.items() if k != "enabled"}
            cc = parse_control_config(raw)
            cc = replace(cc, socket=str(self.config.resolve(cc.socket)))
            _mkdir(Path(cc.socket).parent)
            self.control = ControlServer(
                cc, self.backend, self.audit, cc.policy, self.stats, clock=self.clock
            )
            self.control.start()
        if self.config.metrics_enabled:
            self.metrics = MetricsServer(
                self.config.metrics_listen, self.backend, audit=self.audit_log, clock=self.clock
            )
            self.metrics.start()

    def reload_config(self, new: Config) -> None:
        """Apply what is safe to change live: trust, policies, timers, restart budget."""
        trust = self._load_trust(new)
        keep = (new.plugins_dir, new.state_dir, new.cache_dir, new.control, new.metrics_listen)
        old = (self.config.plugins_dir, self.config.state_dir, self.config.cache_dir,
               self.config.control, self.config.metrics_listen)  # fmt: skip
        if keep != old:
            log.warning("directories, control and metrics settings change only on restart")
        self.trust = trust
        self.config = replace(
            self.config,
            mode=new.mode, plugin_policies=new.plugin_policies, default_policy=new.default_policy,
            drain_timeout_s=new.drain_timeout_s, rescan_interval_s=new.rescan_interval_s,
            restart=new.restart, trust=new.trust, plugin_env=new.plugin_env,
            audit_verify_interval_s=new.audit_verify_interval_s,
        )  # fmt: skip
        self.chain.interval_s = new.audit_verify_interval_s
        self.swapper.drain_timeout_s = new.drain_timeout_s
        self.reconciler.policy = new.restart

    def close_inputs(self) -> None:
        """Stop taking new work: watcher, ticks, control socket, metrics."""
        self.watcher.close()
        self.ticks.close()
        self.chain.close()
        for server in (self.control, self.metrics):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()

    def close_all(self) -> None:
        self.workers.close()
        for kv in self._kv.values():
            kv.close()
        self.runtime.close()
        with contextlib.suppress(Exception):
            self.audit.close()
        if self.journal is not None:
            self.journal.close()
        self.notifier.close()
