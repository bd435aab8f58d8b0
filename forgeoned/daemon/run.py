"""The daemon over its :class:`~forgeoned.daemon.parts.Parts`: start, loop, shutdown.

Startup order matters for ``Type=notify``: state → persisted active set running → full rescan
of plugins.d → watcher, control socket, metrics → ``READY=1``. SIGHUP reloads (RELOADING=1,
rescan, READY=1: :class:`~forgeoned.daemon.reload.Reloader`); SIGTERM sends STOPPING=1 and
drains every plugin within ``shutdown_timeout_s``. The loop thread owns every change of the
running set; signal handlers and other threads only post closures to its inbox
(:mod:`forgeoned.daemon.loop`). Signals that arrive before the handlers exist are held, not
fatal (:mod:`forgeoned.daemon.signals`), and acted upon once READY=1 was sent. The process
entry point is :mod:`forgeoned.daemon.main`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING

from forgeoned.adapters.control.server import ControlServer
from forgeoned.adapters.files.atomic import ensure_dir
from forgeoned.adapters.files.attestations import AttestationFiles
from forgeoned.adapters.files.trust_watch import TrustDirWatcher
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.policy import Policy
from forgeoned.core.ports import Clock
from forgeoned.daemon.config import Config
from forgeoned.daemon.facade import DaemonBackend
from forgeoned.daemon.loop import Loop
from forgeoned.daemon.parts import close_parts, plugins, status_line, trim_compile_cache
from forgeoned.daemon.reload import Reloader
from forgeoned.daemon.stewardship import Stewardship
from forgeoned.daemon.wiring import Observer, build_parts, fault_hook_from_env
from forgeoned.errors import AuditError

if TYPE_CHECKING:  # prometheus_client: loaded only when the metrics endpoint is enabled
    from forgeoned.adapters.metrics.server import MetricsServer

log = logging.getLogger("forgeoned")
MAX_SETTLE_S = 1.0  # a burst of files postpones swaps by at most this much
CHAIN_CHECK_WAIT_S = 60.0  # READY=1 waits this long at most for the start-up chain check


class Daemon:
    """The daemon's loop over its :class:`~forgeoned.daemon.parts.Parts`."""

    def __init__(
        self, config: Config, clock: Clock | None = None, observer: Observer | None = None
    ) -> None:
        """``observer`` is told of every audit event once it is recorded (tests wait on it)."""
        self.clock: Clock = clock or SystemClock()
        self.loop = Loop()
        self.parts = p = build_parts(
            config, self.clock, self.loop.post, self._files_reported, fault_hook_from_env(),
            observer,
        )  # fmt: skip
        self.reloader = Reloader(p, config, self.rescan, self._set_policy)
        self.backend = DaemonBackend(
            p.operations, self.loop, p.verifier, self.reloader.reload, p.audit_log, p.stats,
            p.source, anchor=p.anchor, sources=p.sources,
        )  # fmt: skip
        files = AttestationFiles(config.plugins_dir)
        self.backend.write_attestation = files.write
        self.backend.stewardship = Stewardship(
            lambda: p.verifier.mode, p.reviews, p.evidence, files, p.audit
        )
        self.control: ControlServer | None = None
        self.trust_watch: TrustDirWatcher | None = None
        self.metrics: MetricsServer | None = None
        self._stopping = False
        self.ready = threading.Event()  # set with READY=1 (tests and benchmarks wait on it)
        self.stopped = threading.Event()
        self._next_rescan = 0.0
        self._settle_at = 0.0
        self._settle_by = float("inf")
        # When audit writes start failing or work again, STATUS= says so (built on the loop).
        p.trail.on_change = lambda: self.loop.post(self._audit_changed)

    @property
    def config(self) -> Config:
        """The configuration in force (a reload replaces it)."""
        return self.reloader.config

    # --- plugins.d ----------------------------------------------------------------------

    def _files_reported(self, names: set[str]) -> None:
        """The watcher's thread: hand the names to the loop."""
        self.loop.post(lambda: self.files_changed(names, defer=True))

    def files_changed(self, names: set[str], defer: bool = False) -> None:
        self.parts.reconciler.files_changed(names, defer)
        if defer:
            now = self.clock.monotonic()
            # A lone change is reconciled at once; more changes arriving before that
            # happened mean a burst: wait until plugins.d is quiet for the debounce time.
            quiet = self._settle_by == float("inf") and len(names) == 1
            self._settle_at = now if quiet else now + self.config.debounce_ms / 1000
            self._settle_by = min(self._settle_by, now + MAX_SETTLE_S)

    def _reconcile_settled(self, now: float) -> float | None:
        """Reconcile deferred changes once plugins.d was quiet for the debounce time (or a
        burst went on for MAX_SETTLE_S); returns when to look again."""
        reconciler = self.parts.reconciler
        if not reconciler.pending:
            return None
        if now >= self._settle_at or now >= self._settle_by:
            self._settle_by = float("inf")
            reconciler.reconcile_pending()
            return None
        return min(self._settle_at, self._settle_by)

    def rescan(self) -> None:
        self.parts.reconciler.rescan()
        self._next_rescan = self.clock.monotonic() + self.config.rescan_interval_s

    # --- lifecycle ----------------------------------------------------------------------

    def _audit_changed(self) -> None:
        self.parts.notifier.status(status_line(self.parts))
        if self.parts.trail.outage.ok:
            self.rescan()  # changes in plugins.d waited for the audit log: now, recorded
            self.parts.sources.resume()  # so did the syncs of the OCI sources

    def start(self) -> None:
        """Everything up to READY=1 (on the calling thread, which becomes the loop)."""
        p = self.parts
        self.loop.thread_id = threading.get_ident()
        p.chain.start()  # verifies the audit chain alongside the plugin start
        # Events are written (durably, together), then the review book (once), before the
        # start's one state write.
        with p.active.batch(), p.reviews.held(), p.events.hold():
            p.reconciler.rescan(reconcile=False)
            restored = p.reconciler.start_persisted()
            p.reconciler.reconcile(None)
            self._next_rescan = self.clock.monotonic() + self.config.rescan_interval_s
        trim_compile_cache(p)
        p.watcher.start()
        self.start_servers()
        p.ticks.start()
        p.sources.start()  # after the watcher: what a first sync writes is seen
        if self.config.trust_watch:
            self.trust_watch = TrustDirWatcher(
                self.config.trust_dir, lambda: self.loop.post(self.reloader.trust_changed)
            )
            self.trust_watch.start()
        if not p.chain.wait_runs(1, CHAIN_CHECK_WAIT_S):
            log.warning("audit chain verification still running; READY=1 without it")
        p.audit.record(
            AuditEvent(
                EventName.DAEMON_STARTED,
                message=f"{plugins(restored)} restored; " + status_line(p),
            )
        )
        p.notifier.ready(status_line(p))
        self.ready.set()

    def start_servers(self) -> None:
        p = self.parts
        if self.config.control_enabled:
            cc = self.config.control
            ensure_dir(Path(cc.socket).parent)
            self.control = ControlServer(
                cc, self.backend, p.audit, cc.policy, p.stats, clock=self.clock
            )
            self.control.start()
        if self.config.metrics_enabled:
            from forgeoned.adapters.metrics.server import MetricsServer

            self.metrics = MetricsServer(
                self.config.metrics_listen,
                self.backend,
                audit=p.audit_log,
                writes=p.trail.outage,
                clock=self.clock,
            )
            self.metrics.start()

    def _set_policy(self, policy: Policy) -> None:
        """A reload's new authorisation policy, for the control server (if it runs)."""
        if self.control is not None:
            self.control.set_policy(policy)

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> int:
        self.start()
        p = self.parts
        interval = p.notifier.watchdog_interval()
        next_ping = self.clock.monotonic()
        while not self._stopping:
            trim_compile_cache(p)  # after whatever the last job swapped or removed
            now = self.clock.monotonic()
            if interval is not None and now >= next_ping:
                p.notifier.watchdog()
                next_ping = now + interval
            if now >= self._next_rescan:
                self.rescan()
            if p.reconciler.retry:
                self.files_changed(p.reconciler.take_retry(), defer=True)
            settle = self._reconcile_settled(now)
            p.reconciler.run_due_restarts()
            deadlines = [self._next_rescan, next_ping if interval is not None else now + 1.0]
            if settle is not None:
                deadlines.append(settle)
            if (restart := p.reconciler.next_restart()) is not None:
                deadlines.append(restart)
            if p.reconciler.retry:
                deadlines.append(now + max(0.05, self.config.debounce_ms / 1000))
            timeout = max(0.0, min(deadlines) - self.clock.monotonic())
            try:
                job = self.loop.inbox.get(timeout=timeout)
            except Empty:
                continue
            try:
                job()
            except Exception:  # the loop must survive any single job
                log.exception("daemon loop job failed")
        return self.shutdown()

    def shutdown(self) -> int:
        """SIGTERM: stop taking work, drain and stop every plugin within
        ``shutdown_timeout_s`` (then interrupt what still runs), audit, free everything.

        The drain starts before the servers close: closing the control server waits for its
        in-flight requests, and a call that never ends by itself ends only when the drain
        interrupts it."""
        p = self.parts
        p.notifier.stopping("stopping: draining plugins")
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        self.close_watchers()
        worker = threading.Thread(target=self.drain_all, name="forgeoned-shutdown", daemon=True)
        worker.start()
        self.close_servers()
        worker.join(max(0.0, deadline - time.monotonic()))
        clean = not worker.is_alive()
        if not clean:
            p.plugins.interrupt_all()
            p.retirer.interrupt()
        with contextlib.suppress(AuditError):  # a full disk must not stop the shutdown
            p.audit.record(
                AuditEvent(EventName.DAEMON_STOPPED, reason=None if clean else "shutdown_timeout")
            )
        self.close_all()
        self.stopped.set()
        return 0

    def drain_all(self) -> None:
        """Drain and stop every plugin (SIGTERM), each audited as ``plugin.stopped``, and
        wait for the versions still being retired by earlier swaps."""
        p = self.parts
        with p.events.hold():  # the stop events are written while the others drain
            p.plugins.stop_all(p.swapper.drain_timeout_s, p.events)
        p.retirer.join(self.config.shutdown_timeout_s)

    def close_inputs(self) -> None:
        """Stop taking new work: watcher, ticks, control socket, metrics."""
        self.close_watchers()
        self.close_servers()

    def close_watchers(self) -> None:
        p = self.parts
        p.sources.close()
        if self.trust_watch is not None:
            self.trust_watch.close()
        p.watcher.close()
        p.ticks.close()
        p.chain.close()

    def close_servers(self) -> None:
        for server in (self.control, self.metrics):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()

    def close_all(self) -> None:
        close_parts(self.parts)
