"""``forgeoned --config PATH``: wires the adapters to the core and runs the loop.

Startup order matters for ``Type=notify``: state → persisted active set running → full rescan
of plugins.d → watcher, control socket, metrics → ``READY=1``. SIGHUP reloads (RELOADING=1,
rescan, READY=1); SIGTERM sends STOPPING=1 and drains every plugin within
``shutdown_timeout_s``. The loop thread owns every change of the running set; signal
handlers and other threads only post closures to its inbox (:mod:`forgeoned.daemon.loop`).
Signals that arrive before the handlers exist are held, not fatal
(:mod:`forgeoned.daemon.signals`), and acted upon once READY=1 was sent.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any

from forgeoned.adapters import journal_log
from forgeoned.adapters.control.server import ControlServer
from forgeoned.adapters.files.attestations import AttestationFiles
from forgeoned.adapters.files.trust_watch import TrustDirWatcher
from forgeoned.core.audit_chain import rfc3339
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.policy import Policy
from forgeoned.core.ports import Clock
from forgeoned.core.trust import TrustPolicy
from forgeoned.daemon import signals
from forgeoned.daemon.check import DEFAULT_CONFIG, EX_CONFIG, parse_args, run_check
from forgeoned.daemon.config import Config
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.facade import DaemonBackend
from forgeoned.daemon.loop import Loop
from forgeoned.daemon.reload import apply_config, plan, restart_stale
from forgeoned.daemon.stewardship import Stewardship
from forgeoned.daemon.wiring import (
    Observer,
    build_parts,
    close_parts,
    fault_hook_from_env,
    load_trust,
    mkdir,
    trim_compile_cache,
)
from forgeoned.errors import AuditError, ConfigError, ForgeonedError
from forgeoned.service.chain_watch import describe

if TYPE_CHECKING:  # prometheus_client: loaded only when the metrics endpoint is enabled
    from forgeoned.adapters.metrics.server import MetricsServer

log = logging.getLogger("forgeoned")
MAX_SETTLE_S = 1.0  # a burst of files postpones swaps by at most this much
CHAIN_CHECK_WAIT_S = 60.0  # READY=1 waits this long at most for the start-up chain check


class Daemon:
    """The daemon's loop over its :class:`~forgeoned.daemon.wiring.Parts`."""

    def __init__(
        self, config: Config, clock: Clock | None = None, observer: Observer | None = None
    ) -> None:
        """``observer`` is told of every audit event once it is recorded (tests wait on it)."""
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.loop = Loop()
        self.parts = p = build_parts(
            config, self.clock, self.loop.post, self._files_reported, fault_hook_from_env(),
            observer,
        )  # fmt: skip
        self.backend = DaemonBackend(
            p.operations, self.loop, p.verifier, self.reload, p.audit_log, p.stats, p.source,
            anchor=p.anchor, sources=p.sources,
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

    def reload(self, actor: str | None = None) -> dict[str, Any]:
        """SIGHUP / ``forgeonectl reload``: the new config's live keys, trust and policies, a
        full rescan, the plugins whose capabilities changed restarted, READY=1 again; returns
        the :class:`~forgeoned.daemon.reload.ReloadReport` as JSON. A bad new config is
        refused (``daemon.reload_failed``, raised to the control caller) while the running
        configuration stays in force. ``daemon.reloaded`` (or ``daemon.reload_failed``) is
        written before anything is applied: a reload the audit log cannot record does not
        happen (AuditUnavailableError). READY=1 follows RELOADING=1 whatever raises, with the
        failure in its status line: systemd must not wait forever."""
        p = self.parts
        p.notifier.reloading(int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))
        refused: ForgeonedError | None = None
        failed: BaseException | None = None
        answer: dict[str, Any] = {}
        try:
            new: tuple[Config, TrustPolicy] | None = None
            try:
                config = load_config(self.config.path)
                new = config, load_trust(config, p.audit)
            except ForgeonedError as exc:
                log.error("reload refused, keeping the running configuration: %s", exc)  # noqa: TRY400
                refused = exc
            p.trail.outage.guard(lambda: answer.update(self._reload(actor, refused, new)), "reload")
        except BaseException as exc:
            failed = exc
            raise
        finally:
            status = self.status_line()
            why = failed or refused
            p.notifier.ready(status if why is None else f"{status}; reload failed: {why}")
        if refused is not None:
            raise refused
        return answer

    def _reload(
        self,
        actor: str | None,
        refused: ForgeonedError | None,
        new: tuple[Config, TrustPolicy] | None,
    ) -> dict[str, Any]:
        p = self.parts
        applied = plan(p, self.config, *new) if new is not None else None
        if applied is None:
            reason = refused.code if refused is not None else None
            p.audit.record(AuditEvent(EventName.DAEMON_RELOAD_FAILED, actor=actor,
                                      reason=reason, message=str(refused or "")))  # fmt: skip
        else:
            planned = applied.report([])
            p.audit.record(AuditEvent(EventName.DAEMON_RELOADED, actor=actor,
                                      message=planned.summary(),
                                      details=planned.event_details()))  # fmt: skip
        if new is not None:
            self.config = apply_config(p, self.config, *new, self._set_policy)
        p.directory.clear()  # re-verify every file against the (new) trust
        p.operations.withdraw_untrusted(p.source.recheck)
        self.rescan()
        if applied is None:
            return {}
        report = applied.report(*restart_stale(p, actor))
        report.log()
        return report.to_json()

    def _trust_changed(self) -> None:
        """The trust dir changed (``trust_watch``): reload as ``forgeonectl reload`` would;
        a refused reload keeps the running trust and is audited (daemon.reload_failed)."""
        try:
            self.reload("trust-dir-watcher")
        except ForgeonedError as exc:
            log.warning("trust dir changed; reload refused: %s", exc)

    def _set_policy(self, policy: Policy) -> None:
        if self.control is not None:
            self.control.set_policy(policy)

    # --- lifecycle ----------------------------------------------------------------------

    def status_line(self) -> str:
        counts = self.parts.plugins.state_counts()
        line = (
            f"{_plugins(counts[State.RUNNING])} running, {counts[State.FAILED]} failed, "
            f"{counts[State.QUARANTINED]} quarantined"
        )
        chain = self.parts.chain.last
        line = line if chain is None or chain.ok else f"{line}; {describe(chain)}"
        outage = self.parts.trail.outage.view()
        if outage.since is None:
            return line
        since = rfc3339(outage.since)
        return f"DEGRADED: audit log not writable since {since}, changes refused; {line}"

    def _audit_changed(self) -> None:
        self.parts.notifier.status(self.status_line())
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
                self.config.trust_dir, lambda: self.loop.post(self._trust_changed)
            )
            self.trust_watch.start()
        if not p.chain.wait_runs(1, CHAIN_CHECK_WAIT_S):
            log.warning("audit chain verification still running; READY=1 without it")
        p.audit.record(
            AuditEvent(
                EventName.DAEMON_STARTED,
                message=f"{_plugins(restored)} restored; " + self.status_line(),
            )
        )
        p.notifier.ready(self.status_line())
        self.ready.set()

    def start_servers(self) -> None:
        p = self.parts
        if self.config.control_enabled:
            cc = self.config.control
            mkdir(Path(cc.socket).parent)
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


def _plugins(count: int) -> str:
    """``1 plugin``, ``2 plugins``, ``0 plugins``."""
    return f"{count} plugin" if count == 1 else f"{count} plugins"


def _install_signals(daemon: Daemon) -> None:
    """The real handlers; a SIGHUP/SIGTERM held since :func:`signals.hold` arrives now."""

    def reload() -> None:  # the report goes to the journal and the audit log
        daemon.reload()

    signals.install(
        on_stop=lambda: daemon.loop.post(daemon.stop), on_reload=lambda: daemon.loop.post(reload)
    )


def main(argv: Sequence[str] | None = None) -> int:
    signals.hold()  # already held by forgeoned.daemon.main; again for direct callers
    args = parse_args(argv)
    if args.check_config is not None:
        chosen = args.check_config if args.check_config is not True else args.config
        return run_check(Path(chosen) if chosen else DEFAULT_CONFIG)
    journal_log.configure(args.log_level)
    # What the imports built (modules, classes, functions: ~45,000 objects) lives as long as
    # the process: moved out of the collector's sight, the collections of the start (and
    # every full one later) need not walk it again.
    gc.freeze()
    try:
        daemon = Daemon(load_config(args.config))
    except (ConfigError, ForgeonedError) as exc:
        journal_log.error_line(f"forgeoned: {exc}")
        return EX_CONFIG if isinstance(exc, ConfigError) else 1  # EX_CONFIG, as systemd expects
    _install_signals(daemon)
    try:
        return daemon.run()
    except ForgeonedError as exc:
        journal_log.error_line(f"forgeoned: {exc}")
        daemon.close_all()
        return 1


if __name__ == "__main__":
    sys.exit(main())
