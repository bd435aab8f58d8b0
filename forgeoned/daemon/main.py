"""``forgeoned --config PATH``: wires the adapters to the core and runs the loop.

Startup order matters for ``Type=notify``: state → persisted active set running → full rescan
of plugins.d → watcher, control socket, metrics → ``READY=1``. SIGHUP reloads (RELOADING=1,
rescan, READY=1); SIGTERM sends STOPPING=1 and drains every plugin within
``shutdown_timeout_s``. The loop thread owns every change of the running set; signal
handlers and other threads only post closures to its inbox (a ``SimpleQueue``, whose ``put``
is safe in a signal handler).
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
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from queue import Empty, SimpleQueue
from types import FrameType
from typing import TypeVar

from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.audit_chain import rfc3339
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State, Trigger
from forgeoned.core.ports import Clock
from forgeoned.core.trust import TrustPolicy
from forgeoned.daemon.config import Config, load_config
from forgeoned.daemon.wiring import Parts, fault_hook_from_env
from forgeoned.errors import ArtifactError, AuditError, ConfigError, ForgeonedError
from forgeoned.service.chain_watch import describe
from forgeoned.service.plugin_host import PluginHost

log = logging.getLogger("forgeoned")
T = TypeVar("T")
REQUEST_TIMEOUT_S = 300.0
MAX_SETTLE_S = 1.0  # a burst of files postpones swaps by at most this much
CHAIN_CHECK_WAIT_S = 60.0  # READY=1 waits this long at most for the start-up chain check


class Loop:
    """The daemon's single worker: runs posted closures in order."""

    def __init__(self) -> None:
        self.inbox: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self.thread_id: int | None = None

    def post(self, job: Callable[[], None]) -> None:
        self.inbox.put(job)

    def call(self, job: Callable[[], T], timeout: float = REQUEST_TIMEOUT_S) -> T:
        """Run ``job`` on the loop and return its result (or raise its error)."""
        if threading.get_ident() == self.thread_id:
            return job()
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the waiting caller
                done.set_exception(exc)

        self.post(run)
        return done.result(timeout)


class Daemon(Parts):
    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.loop = Loop()
        super().__init__(config, clock or SystemClock(), self.loop.post, fault_hook_from_env())
        self._stopping = False
        self.ready = threading.Event()  # set with READY=1 (tests and benchmarks wait on it)
        self.stopped = threading.Event()
        self._retry: set[str] = set()
        self._next_rescan = 0.0
        self._settle_at = 0.0
        self._settle_by = float("inf")
        # When audit writes start failing or work again, STATUS= says so (built on the loop).
        self.audit.on_change = lambda: self.loop.post(self._audit_changed)

    # --- plugins.d ----------------------------------------------------------------------

    def verify(self, data: bytes, detached: bytes | None) -> VerifiedArtifact:
        return self.verifier(data, detached)

    def files_changed(self, names: set[str], defer: bool = False) -> None:
        self._retry |= self.reconciler.files_changed(names, defer)
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
        if not self.reconciler.pending:
            return None
        if now >= self._settle_at or now >= self._settle_by:
            self._settle_by = float("inf")
            self.reconciler.reconcile_pending()
            return None
        return min(self._settle_at, self._settle_by)

    def rescan(self) -> None:
        self._retry |= self.reconciler.rescan()
        self._next_rescan = self.clock.monotonic() + self.config.rescan_interval_s

    def reload(self, actor: str | None = None) -> None:
        """SIGHUP / ``forgeonectl reload``: new trust keys and policies where safe, a full
        rescan, READY=1 again. A bad new config is refused (and raised to the control caller)
        while the running configuration stays in force. ``daemon.reloaded`` is written first:
        a reload the audit log cannot record does not happen (AuditUnavailableError)."""
        self.notifier.reloading(int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))
        try:
            self.audit_outage.guard(lambda: self._reload(actor), "reload")
        finally:
            self.notifier.ready(self.status_line())

    def _reload(self, actor: str | None) -> None:
        refused: ForgeonedError | None = None
        new: tuple[Config, TrustPolicy] | None = None
        try:
            config = load_config(self.config.path)
            new = config, self.load_trust(config)
        except ForgeonedError as exc:
            log.warning("reload refused, keeping the running configuration: %s", exc)
            refused = exc
        reason = refused.code if refused is not None else None
        self.audit.record(AuditEvent(EventName.DAEMON_RELOADED, actor=actor, reason=reason,
                                     message=str(refused or "")))  # fmt: skip
        if new is not None:
            self.reload_config(*new)
        self.reconciler.forget_attempts()
        self.directory.clear()  # re-verify every file against the (new) trust
        self._withdraw_untrusted()
        self.rescan()
        if refused is not None:
            raise refused

    def _withdraw_untrusted(self) -> None:
        """Stop every running version whose exact bytes the (new) trust refuses, e.g. signed
        only by a key that was just revoked: revoking a key must not leave its code running."""
        for name, record in sorted(self.active.current.active.items()):
            host = self.reconciler.hosts.get(name)
            blob = self.active.blob(record.sha256)
            if host is None or blob is None:
                continue
            try:
                self.verifier(*blob)
            except ArtifactError as exc:
                # Withdrawn even if the record is lost: untrusted code must not keep running.
                with contextlib.suppress(AuditError):
                    self.audit.record(
                        AuditEvent(EventName.PLUGIN_REJECTED, plugin=name,
                                   version=record.version, sha256=record.sha256,
                                   reason=exc.code,
                                   message=f"running version no longer trusted: {exc}")
                    )  # fmt: skip
                del self.reconciler.hosts[name]
                self.swapper.remove(host)

    # --- lifecycle ----------------------------------------------------------------------

    def status_line(self) -> str:
        states = [h.state for h in self.reconciler.hosts.values()]
        running = sum(s is State.RUNNING for s in states)
        failed = sum(s is State.FAILED for s in states)
        quarantined = sum(s is State.QUARANTINED for s in states)
        line = f"{running} plugins running, {failed} failed, {quarantined} quarantined"
        chain = self.chain.last
        line = line if chain is None or chain.ok else f"{line}; {describe(chain)}"
        outage = self.audit_outage.view()
        if outage.since is None:
            return line
        since = rfc3339(outage.since)
        return f"DEGRADED: audit log not writable since {since}, changes refused; {line}"

    def _audit_changed(self) -> None:
        self.notifier.status(self.status_line())
        if self.audit_outage.ok:
            self.rescan()  # changes in plugins.d waited for the audit log: now, recorded

    def start(self) -> None:
        """Everything up to READY=1 (on the calling thread, which becomes the loop)."""
        self.loop.thread_id = threading.get_ident()
        self.chain.start()  # verifies the audit chain alongside the plugin start
        # Events are written (durably, together) before the start's one state write.
        with self.active.batch(), self.events.hold():
            self._retry |= self.reconciler.rescan(reconcile=False)
            restored = self.reconciler.start_persisted()
            self.reconciler.reconcile(None)
            self._next_rescan = self.clock.monotonic() + self.config.rescan_interval_s
        self.watcher.start()
        self.start_servers()
        self.ticks.start()
        if not self.chain.wait_runs(1, CHAIN_CHECK_WAIT_S):
            log.warning("audit chain verification still running; READY=1 without it")
        self.audit.record(
            AuditEvent(
                EventName.DAEMON_STARTED,
                message=f"{restored} plugins restored; " + self.status_line(),
            )
        )
        self.notifier.ready(self.status_line())
        self.ready.set()

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> int:
        self.start()
        interval = self.notifier.watchdog_interval()
        next_ping = self.clock.monotonic()
        while not self._stopping:
            now = self.clock.monotonic()
            if interval is not None and now >= next_ping:
                self.notifier.watchdog()
                next_ping = now + interval
            if now >= self._next_rescan:
                self.rescan()
            if self._retry:
                retry, self._retry = self._retry, set()
                self.files_changed(retry, defer=True)
            settle = self._reconcile_settled(now)
            self.reconciler.run_due_restarts()
            deadlines = [self._next_rescan, next_ping if interval is not None else now + 1.0]
            if settle is not None:
                deadlines.append(settle)
            if (restart := self.reconciler.next_restart()) is not None:
                deadlines.append(restart)
            if self._retry:
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
        self.notifier.stopping("stopping: draining plugins")
        self.close_inputs()
        worker = threading.Thread(target=self.drain_all, name="forgeoned-shutdown", daemon=True)
        worker.start()
        worker.join(self.config.shutdown_timeout_s)
        clean = not worker.is_alive()
        if not clean:
            for host in list(self.reconciler.hosts.values()):
                if host.current is not None:
                    host.current.interrupt()
        with contextlib.suppress(AuditError):  # a full disk must not stop the shutdown
            self.audit.record(
                AuditEvent(EventName.DAEMON_STOPPED, reason=None if clean else "shutdown_timeout")
            )
        self.close_all()
        self.stopped.set()
        return 0

    def drain_all(self) -> None:
        """Drain and stop every plugin (SIGTERM), each audited as ``plugin.stopped``; the
        active set stays as it is on disk (the next start brings the same versions back)."""
        with self.events.hold():  # the stop events are written while the others drain
            for host in list(self.reconciler.hosts.values()):
                self._stop(host)

    def _stop(self, host: PluginHost) -> None:
        v = host.current
        if v is not None and host.state in (State.RUNNING, State.PAUSED):
            host.trigger(Trigger.DRAIN)
            host.drain(self.swapper.drain_timeout_s)
            v.shutdown()
            host.trigger(Trigger.DRAINED)
            self.events.record(  # a failure (full audit disk) is logged, the drain goes on
                AuditEvent(EventName.PLUGIN_STOPPED, plugin=host.name, version=v.version,
                           sha256=v.sha256, reason="shutdown")
            )  # fmt: skip
        elif v is not None:
            v.shutdown()
        host.install(None)
        host.release()


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
