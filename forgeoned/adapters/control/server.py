"""The control API server: HTTP/1.1 + JSON on a Unix socket, one asyncio loop in its own thread.

Why this design: reading, parsing and writing for every connection happen on one event-loop
thread; each complete request is handed to a bounded worker pool, where
:class:`~forgeoned.adapters.control.dispatch.Dispatcher` routes, authorises, serves it (it may
block: invoke runs wasm, install waits for a swap, the audit sink waits until an event is
durable) and builds the response bytes. Each connection has at most one request in flight
(pipelined bytes wait in the kernel), so the pool's queue is bounded by ``max_connections``;
connections over that bound are answered ``503 busy`` and closed.

Measured against one thread per connection (docs/performance.md): that gave about twice the
throughput and a third of the single-client latency, but a worse p99 with 16 busy clients on
2 loaded cores (16 threads convoying on the GIL); this design keeps p99 within the 10 ms
target while clearing the 3,000 invocations/s one, so it stays.

Limits: the request line + headers are capped (431), the body is capped (413), a request must
arrive whole within ``read_timeout_s`` of its first byte (408, then closed: a slow-loris
client holds one connection slot for at most that long), an idle keep-alive connection, or
one that does not read its answers, is closed after ``idle_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from forgeoned.adapters.control.connection import Connection
from forgeoned.adapters.control.dispatch import Dispatcher
from forgeoned.adapters.control.http import Request, error_response
from forgeoned.adapters.control.pool import WorkerPool
from forgeoned.adapters.control.socket import PeerIdentifier, bind_control_socket
from forgeoned.adapters.control.streaming import Streamed, send_streamed
from forgeoned.core.control_config import ControlConfig
from forgeoned.core.policy import Policy
from forgeoned.core.ports import AuditSink, ControlBackend
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import BusyError, StateError

log = logging.getLogger(__name__)
_START_TIMEOUT_S = 10.0
# Pending connections the kernel queues before accept (capped by net.core.somaxconn):
# bursts wait there instead of failing with EAGAIN; admission control happens after accept.
_BACKLOG = 1024
# Threads serving requests: enough that a slow call (an install waiting for its swap, a
# plugin near its deadline) does not stall the others; more only adds GIL contention.
_WORKERS = 8
# ``audit follow`` streams, each on a thread of its own (they never end by themselves, so they
# must not hold a worker); more are answered 503 busy.
MAX_FOLLOWERS = 8
_HANDED_OFF = b"handed off"  # a job's result: a follower thread answers instead


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
        self.peers = PeerIdentifier()
        self.dispatcher = Dispatcher(backend, audit, policy, self.peers, stats)
        self._pool = WorkerPool(_WORKERS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[Connection] = set()
        self._changed = threading.Condition()
        self._counts = {"total": 0, "refused": 0, "timed_out": 0}
        self._closed = False
        self._inode = -1
        self._followers = threading.BoundedSemaphore(MAX_FOLLOWERS)

    @property
    def socket_path(self) -> str:
        return self.config.socket

    def set_policy(self, policy: Policy) -> None:
        """Authorise the requests from now on by ``policy`` (a reload's new [control] roles,
        bindings and rules); a request already authorised finishes as it was allowed."""
        self.dispatcher.policy = policy

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
        self.dispatcher.close()
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
            requests=self.dispatcher.requests,
            denied=self.dispatcher.denied,
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
        """Serve ``request`` in the pool; its answer goes back to ``conn`` on the loop (a
        streamed answer is written from the worker, see :mod:`.streaming`)."""
        keep = request.head.keep_alive

        def job() -> bytes | None:
            out = self.dispatcher.handle(conn.caller(), request)
            if not isinstance(out, Streamed):
                return out
            if out.follow:
                return self._hand_off(conn, out, keep)
            timeout = self.config.idle_timeout_s
            return None if send_streamed(out, lambda data: conn.send(data, timeout)) else b""

        def done(out: bytes | None) -> None:
            if out is not _HANDED_OFF:
                conn.finish(out, keep)

        self._pool.submit(job, done)

    def _hand_off(self, conn: Connection, out: Streamed, keep: bool) -> bytes:
        """Serve a follow stream on its own thread, if fewer than MAX_FOLLOWERS run."""
        if not self._followers.acquire(blocking=False):
            busy = BusyError(f"too many audit followers (max {MAX_FOLLOWERS})")
            return error_response(busy, keep_alive=False)

        def serve() -> None:
            timeout = self.config.idle_timeout_s
            try:
                ok = send_streamed(out, lambda data: conn.send(data, timeout))
            finally:
                self._followers.release()
            if not ok:
                log.warning("audit follower dropped (gone, or not reading for %gs)", timeout)
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                    loop.call_soon_threadsafe(conn.finish, None if ok else b"", keep)

        threading.Thread(target=serve, name="forgeoned-follower", daemon=True).start()
        return _HANDED_OFF
