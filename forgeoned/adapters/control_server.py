"""The control API server: HTTP/1.1 + JSON on a Unix socket, one asyncio loop in its own thread.

Why this design: parsing, routing and authorisation are microseconds of work and run on the
event loop; everything that may block (the backend: invoke runs wasm, install waits for a
swap; the audit sink: it returns only once an event is durable) runs in a bounded worker
pool, and the response bytes are built there too. Each connection has at most one request in
flight (later pipelined bytes wait in its buffer), so the pool's queue is bounded by
``max_connections``; connections over that bound are answered ``503 busy`` and closed.

Limits: the request line + headers are capped (431), the body is capped (413), a request must
arrive whole within ``read_timeout_s`` of its first byte (408, then closed: a slow-loris
client holds one connection slot for at most that long), an idle keep-alive connection is
closed after ``idle_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from forgeoned.adapters.control_connection import Connection
from forgeoned.adapters.control_http import (
    Request,
    RequestHead,
    error_response,
    json_response,
    response,
)
from forgeoned.adapters.control_pool import WorkerPool
from forgeoned.adapters.control_routes import Context, Route, resolve
from forgeoned.adapters.control_socket import PeerIdentifier, bind_control_socket
from forgeoned.core.control_config import ControlConfig
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.policy import Action, Caller, Decision, Policy
from forgeoned.core.ports import AuditSink, ControlBackend
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import ForbiddenError, ForgeonedError, StateError

log = logging.getLogger(__name__)
_START_TIMEOUT_S = 10.0
# Pending connections the kernel queues before accept (capped by net.core.somaxconn):
# bursts wait there instead of failing with EAGAIN; admission control happens after accept.
_BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class ControlServerStats:
    connections_open: int
    connections_total: int
    connections_refused: int
    requests: int
    denied: int
    timed_out: int


class ControlServer:
    """Serves the control API for ``backend`` on ``config.socket``."""

    def __init__(
        self,
        config: ControlConfig,
        backend: ControlBackend,
        audit: AuditSink,
        policy: Policy,
        stats: DaemonStats | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.audit = audit
        self.policy = policy
        self.daemon_stats = stats
        self.peers = PeerIdentifier()
        self._pool = WorkerPool(config.workers)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[Connection] = set()
        self._changed = threading.Condition()
        self._counts = {"total": 0, "refused": 0, "requests": 0, "denied": 0, "timed_out": 0}
        self._closed = False
        self._inode = -1

    @property
    def socket_path(self) -> str:
        return self.config.socket

    def start(self) -> None:
        """Bind the socket and start serving; returns once the socket accepts connections."""
        cfg = self.config
        sock = bind_control_socket(
            cfg.socket, cfg.mode, cfg.group, max(cfg.max_connections, _BACKLOG)
        )
        self._inode = Path(cfg.socket).lstat().st_ino
        loop = asyncio.new_event_loop()
        ready: Future[None] = Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_unix_server(lambda: Connection(self), sock=sock)
                )
            except BaseException as exc:  # report any startup failure to start()
                ready.set_exception(exc)
                return
            self._pool.start(loop)
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="forgeoned-control-loop", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=_START_TIMEOUT_S)
        except Exception as exc:
            sock.close()
            raise StateError(f"control server did not start: {exc}") from exc

    def close(self) -> None:
        """Stop accepting, close every connection, wait for running requests; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._shutdown_on_loop)
            thread.join(timeout=_START_TIMEOUT_S)
        self._pool.shutdown(timeout=_START_TIMEOUT_S)
        path = Path(self.config.socket)
        try:
            ours = path.is_socket() and path.lstat().st_ino == self._inode
        except OSError:
            ours = False
        if ours:  # never remove a socket another server has bound there since
            path.unlink(missing_ok=True)

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> ControlServerStats:
        c = self._counts
        return ControlServerStats(
            connections_open=len(self._connections),
            connections_total=c["total"],
            connections_refused=c["refused"],
            requests=c["requests"],
            denied=c["denied"],
            timed_out=c["timed_out"],
        )

    def _shutdown_on_loop(self) -> None:
        assert self._loop is not None
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        self._loop.stop()

    # --- called from connections (loop thread) ---------------------------------------------

    def admit(self, conn: Connection) -> bool:
        self._counts["total"] += 1
        if len(self._connections) >= self.config.max_connections:
            self._counts["refused"] += 1
            return False
        with self._changed:
            self._connections.add(conn)
        return True

    def note_timeout(self) -> None:
        self._counts["timed_out"] += 1

    def forget(self, conn: Connection) -> None:
        with self._changed:
            self._connections.discard(conn)
            self._changed.notify_all()

    def wait_connections(self, at_most: int, timeout: float) -> bool:
        """Wait until at most ``at_most`` connections are open; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._connections) <= at_most, timeout)

    def submit(self, conn: Connection, request: Request) -> None:
        """Resolve and authorise ``request`` on the loop; serve it in the pool."""
        self._counts["requests"] += 1
        head = request.head
        try:
            route = resolve(head.method, head.path)
        except ForgeonedError as exc:
            conn.finish(error_response(exc, keep_alive=head.keep_alive), head.keep_alive)
            return
        caller = conn.caller
        decision = None
        if route.action is not None:
            decision = self.policy.authorize(caller, route.action, route.plugin)
            if not decision.allowed:
                self._counts["denied"] += 1
        keep = head.keep_alive
        self._pool.submit(
            lambda: self._serve(route, caller, request, decision),
            lambda out: conn.finish(out, keep),
        )

    # --- worker threads --------------------------------------------------------------------

    def _serve(
        self, route: Route, caller: Caller, request: Request, decision: Decision | None
    ) -> bytes:
        keep = request.head.keep_alive
        action = route.action
        if decision is not None and not decision.allowed:
            assert action is not None
            return self._deny(route, caller, request.head, decision)
        ctx = Context(self.backend, self.policy, caller, request, route.plugin)
        outcome = "ok"
        try:
            reply = route.run(ctx)
        except ForgeonedError as exc:
            outcome = exc.code
            out = error_response(exc, keep_alive=keep)
        except Exception as exc:  # the per-request boundary: record and answer 500
            log.exception("control request %s %s failed", request.head.method, request.head.path)
            outcome = "internal"
            err = ForgeonedError(f"internal error: {type(exc).__name__}")
            out = error_response(err, keep_alive=keep)
        else:
            if isinstance(reply.body, bytes):
                out = response(
                    reply.status,
                    reply.body,
                    content_type=reply.content_type,
                    keep_alive=keep,
                )
            else:
                out = json_response(reply.status, reply.body, keep_alive=keep)
        if action is Action.RELOAD and outcome == "ok":
            self.peers.clear()  # user and group names may have changed as well
        if action is not None and action.changes_state:
            assert decision is not None
            self._record(
                AuditEvent(
                    EventName.CONTROL_ACTION,
                    plugin=route.plugin,
                    actor=caller.actor,
                    reason=outcome,
                    message=f"{caller.actor} {action.value}: {outcome}",
                    details=_details(caller, request.head, action.value, decision.rule),
                )
            )
        if self.daemon_stats is not None and action is not None:
            self.daemon_stats.control_requests[(action.value, outcome)] += 1
        return out

    def _deny(self, route: Route, caller: Caller, head: RequestHead, decision: Decision) -> bytes:
        assert route.action is not None
        self._record(
            AuditEvent(
                EventName.CONTROL_DENIED,
                plugin=route.plugin,
                actor=caller.actor,
                reason=decision.rule,
                message=decision.message,
                details=_details(caller, head, route.action.value, decision.rule),
            )
        )
        if self.daemon_stats is not None:
            self.daemon_stats.control_requests[(route.action.value, "forbidden")] += 1
        exc = ForbiddenError(f"{decision.message} (rule {decision.rule})")
        return error_response(exc, keep_alive=head.keep_alive, rule=decision.rule)

    def _record(self, event: AuditEvent) -> None:
        try:
            self.audit.record(event)
        except Exception:  # an audit failure must not kill the request thread
            log.exception("could not record %s", event.event.label)


def _details(caller: Caller, head: RequestHead, action: str, rule: str) -> dict[str, object]:
    return {
        "action": action,
        "rule": rule,
        "uid": caller.uid,
        "gid": caller.gid,
        "pid": caller.pid,
        "method": head.method,
        "path": head.path,
    }
