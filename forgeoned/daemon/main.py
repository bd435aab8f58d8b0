"""``forgeoned --config PATH``: wires the adapters to the core and runs the loop.

Startup order matters for ``Type=notify``: state → persisted active set running → full rescan
of plugins.d → watcher, control socket, metrics → ``READY=1``. SIGHUP reloads (RELOADING=1,
rescan, READY=1); SIGTERM sends STOPPING=1 and drains every plugin within
``shutdown_timeout_s``. The loop thread owns every change of the running set; signal
handlers and other threads only post closures to its inbox (:mod:`forgeoned.daemon.loop`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from queue import Empty
from types import FrameType

from forgeoned.adapters.control.server import ControlServer
from forgeoned.adapters.metrics.server import MetricsServer
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.ports import Clock
from forgeoned.daemon.config import Config, load_config
from forgeoned.daemon.facade import DaemonBackend
from forgeoned.daemon.loop import Loop
from forgeoned.daemon.wiring import (
    Observer,
    build_parts,
    close_parts,
    fault_hook_from_env,
    mkdir,
    reload_config,
)
from forgeoned.errors import ConfigError, ForgeonedError
from forgeoned.service.chain_watch import describe

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
            p.operations, self.loop, p.verifier, self.reload, p.audit_log, p.stats
        )
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self._stopping = False
        self.ready = threading.Event()  # set with READY=1 (tests and benchmarks wait on it)
        self.stopped = threading.Event()
        self._next_rescan = 0.0
        self._settle_at = 0.0
        self._settle_by = float("inf")

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

    def reload(self, actor: str | None = None) -> None:
        """SIGHUP / ``forgeonectl reload``: new trust keys and policies where safe, a full
        rescan, READY=1 again. A bad new config is refused (and raised to the control caller)
        while the running configuration stays in force. READY=1 follows RELOADING=1 whatever
        raises, with the failure in its status line: systemd must not wait forever."""
        p = self.parts
        p.notifier.reloading(int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))
        refused: ForgeonedError | None = None
        failed: BaseException | None = None
        try:
            try:
                self.config = reload_config(p, self.config, load_config(self.config.path))
            except ForgeonedError as exc:
                log.warning("reload refused, keeping the running configuration: %s", exc)
                refused = exc
            # Refused candidates stay out (docs/operations.md, "What runs"); only the files
            # are judged again, against the (new) trust.
            p.directory.clear()  # re-verify every file against the (new) trust
            p.operations.withdraw_untrusted(p.source.recheck)
            self.rescan()
            reason = refused.code if refused is not None else None
            p.audit.record(AuditEvent(EventName.DAEMON_RELOADED, actor=actor, reason=reason,
                                      message=str(refused or "")))  # fmt: skip
        except BaseException as exc:
            failed = exc
            raise
        finally:
            status = self.status_line()
            p.notifier.ready(status if failed is None else f"{status}; reload failed: {failed}")
        if refused is not None:
            raise refused

    # --- lifecycle ----------------------------------------------------------------------

    def status_line(self) -> str:
        counts = self.parts.plugins.state_counts()
        line = (
            f"{counts[State.RUNNING]} plugins running, {counts[State.FAILED]} failed, "
            f"{counts[State.QUARANTINED]} quarantined"
        )
        chain = self.parts.chain.last
        return line if chain is None or chain.ok else f"{line}; {describe(chain)}"

    def start(self) -> None:
        """Everything up to READY=1 (on the calling thread, which becomes the loop)."""
        p = self.parts
        self.loop.thread_id = threading.get_ident()
        p.chain.start()  # verifies the audit chain alongside the plugin start
        # Events are written (durably, together) before the start's one state write.
        with p.active.batch(), p.events.hold():
            p.reconciler.rescan(reconcile=False)
            restored = p.reconciler.start_persisted()
            p.reconciler.reconcile(None)
            self._next_rescan = self.clock.monotonic() + self.config.rescan_interval_s
        p.watcher.start()
        self.start_servers()
        p.ticks.start()
        if not p.chain.wait_runs(1, CHAIN_CHECK_WAIT_S):
            log.warning("audit chain verification still running; READY=1 without it")
        p.audit.record(
            AuditEvent(
                EventName.DAEMON_STARTED,
                message=f"{restored} plugins restored; " + self.status_line(),
            )
        )
        p.notifier.ready(self.status_line())
        self.ready.set()

    def start_servers(self) -> None:
        p = self.parts
        if self.config.control_enabled:
            cc = self.config.control
            mkdir(Path(cc.socket).parent)
            self.control = ControlServer(cc, self.backend, p.audit, cc.policy, p.stats)
            self.control.start()
        if self.config.metrics_enabled:
            self.metrics = MetricsServer(
                self.config.metrics_listen, self.backend, audit=p.audit_log
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
        p = self.parts
        p.notifier.stopping("stopping: draining plugins")
        self.close_inputs()
        worker = threading.Thread(target=self.drain_all, name="forgeoned-shutdown", daemon=True)
        worker.start()
        worker.join(self.config.shutdown_timeout_s)
        clean = not worker.is_alive()
        if not clean:
            p.plugins.interrupt_all()
        p.audit.record(
            AuditEvent(EventName.DAEMON_STOPPED, reason=None if clean else "shutdown_timeout")
        )
        self.close_all()
        self.stopped.set()
        return 0

    def drain_all(self) -> None:
        """Drain and stop every plugin (SIGTERM), each audited as ``plugin.stopped``."""
        p = self.parts
        with p.events.hold():  # the stop events are written while the others drain
            p.plugins.stop_all(p.swapper.drain_timeout_s, p.events)

    def close_inputs(self) -> None:
        """Stop taking new work: watcher, ticks, control socket, metrics."""
        p = self.parts
        p.watcher.close()
        p.ticks.close()
        p.chain.close()
        for server in (self.control, self.metrics):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()

    def close_all(self) -> None:
        close_parts(self.parts)


def _install_signals(daemon: Daemon) -> None:
    def on_term(signum: int, frame: FrameType | None) -> None:
        daemon.loop.post(daemon.stop)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        daemon.loop.post(daemon.reload)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forgeoned", description="forgeoned plugin daemon")
    parser.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    parser.add_argument("--log-level", default=os.environ.get("FORGEONED_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        daemon = Daemon(load_config(args.config))
    except (ConfigError, ForgeonedError) as exc:
        print(f"forgeoned: {exc}", file=sys.stderr)
        return 78 if isinstance(exc, ConfigError) else 1  # EX_CONFIG, as systemd expects
    _install_signals(daemon)
    try:
        return daemon.run()
    except ForgeonedError as exc:
        print(f"forgeoned: {exc}", file=sys.stderr)
        daemon.close_all()
        return 1


if __name__ == "__main__":
    sys.exit(main())
