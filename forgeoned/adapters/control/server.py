"""The control API server: HTTP/1.1 + JSON on a Unix socket, one asyncio loop in its own thread.

Why this design: reading, parsing (llhttp), routing and authorising happen on one event-loop
thread for every connection; each allowed request then goes to one of two bounded worker
lanes (:mod:`forgeoned.adapters.control.lanes`: invokes, and everything else), where
:class:`~forgeoned.adapters.control.dispatch.Dispatcher` serves it (it may block: invoke runs
wasm, install waits for a swap, the audit sink waits until an event is durable) and builds the
response bytes; or, for an invoke of a plugin whose calls are known to be short, on the loop
thread itself (:mod:`forgeoned.adapters.control.inline`). Each connection has at most one
request in flight (pipelined bytes wait in the kernel), so the lanes' queues are bounded by
the connection limits (:mod:`forgeoned.adapters.control.admission`: a hard cap, a cap per
uid, slots kept for administrators). Measured against one thread per connection, and the
costs of each step, in docs/performance.md ("Control API").

Limits: the request line + headers are capped (431); the body is capped per action (413),
checked on the head with authorisation, so a refused or oversized body is never buffered; a
request must arrive whole within ``read_timeout_s`` of its first byte (408, then closed: a
slow-loris client holds one connection slot for at most that long); an idle keep-alive
connection, or one that does not read its answers, is closed after ``idle_timeout_s``. The
deadlines are on the injected clock and checked by one sweep every ``sweep_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from forgeoned.adapters.control.admission import Admission, Limits
from forgeoned.adapters.control.connection import Connection
from forgeoned.adapters.control.dispatch import Dispatcher
from forgeoned.adapters.control.lanes import Lanes
from forgeoned.adapters.control.socket import PeerIdentifier, bind_control_socket
from forgeoned.adapters.control.verdict import BodyCaps
from forgeoned.adapters.serving import stop_serving
from forgeoned.core.call_feed import CallFeed
from forgeoned.core.clock import SystemClock
from forgeoned.core.control_config import ControlConfig
from forgeoned.core.policy import Policy
from forgeoned.core.ports import AuditSink, Clock, ControlBackend
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import StateError

log = logging.getLogger(__name__)
_START_TIMEOUT_S: Final = 10.0
# Pending connections the kernel queues before accept (capped by net.core.somaxconn):
# bursts wait there instead of failing with EAGAIN; admission control happens after accept.
_BACKLOG: Final = 1024
SWEEP_INTERVAL_S: Final = 0.25
UNROUTED: Final = "unrouted"  # the action label of a request refused before routing


@dataclass(frozen=True, slots=True)
class ControlServerStats:
    connections_open: int
    connections_total: int
    connections_refused: int
    requests: int
    denied: int
    timed_out: int
    bad_requests: int  # answered with an error before reaching a route (parse, cap, path)
    buffered_bytes: int  # request bytes held in connection buffers right now
    reading: int  # connections with part of a request in (its read deadline running)
    idle: int  # connections waiting for their next request
    stalled: int  # connections whose peer does not read its answers
    sweeps: int  # deadline sweeps done
    inline_calls: int  # invokes run on the loop thread
    inline_demotions: int  # inline calls over the fast bound (back to probation)


class ControlServer:
    """Serves the control API for ``backend`` on ``config.socket``."""

    def __init__(
        self,
        config: ControlConfig,
        backend: ControlBackend,
        audit: AuditSink,
        policy: Policy,
        stats: DaemonStats | None = None,
        *,
        clock: Clock | None = None,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.peers = PeerIdentifier()
        self.admission = Admission(
            Limits(
                config.max_connections,
                config.max_connections_per_uid,
                config.admin_reserved_connections,
            ),
            policy,
        )
        caps = BodyCaps(config.max_body_bytes, config.max_invoke_bytes, config.max_json_bytes)
        self.dispatcher = Dispatcher(
            backend,
            audit,
            policy,
            caps,
            stats,
            self.clock,
            on_reload=self._names_changed,
            feed=CallFeed(config.follow_calls_buffer, stats),
        )
        self.lanes = Lanes(self.dispatcher, self.peers)
        self._sweep_s = sweep_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[Connection] = set()
        self._changed = threading.Condition()
        self._counts = {"total": 0, "refused": 0, "timed_out": 0, "bad_requests": 0, "sweeps": 0}
        self.requests = 0  # request heads judged (loop thread)
        self._closed = False
        self._inode = -1

    @property
    def socket_path(self) -> str:
        return self.config.socket

    def set_policy(self, policy: Policy) -> None:
        """Authorise the requests from now on by ``policy`` (a reload's new [control] roles,
        bindings and rules); a request already authorised finishes as it was allowed.
        Connections decide their next request afresh, and who is an administrator (for the
        reserved slots) is decided again for the connections to come."""
        self.admission.policy = policy
        self.dispatcher.policy = policy
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.admission.forget_roles)

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
            self.lanes.start(loop)
            loop.call_later(self._sweep_s, self._sweep)
            ready.set_result(None)
            loop.run_forever()
            assert self._server is not None
            loop.run_until_complete(stop_serving(self._server, self._transports))
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
            loop.call_soon_threadsafe(loop.stop)  # then stop_serving closes every connection
            thread.join(timeout=_START_TIMEOUT_S)
        self.lanes.shutdown(timeout=_START_TIMEOUT_S)
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
        with self._changed:
            connections = list(self._connections)
        inline = self.dispatcher.inline.statistics()
        phases = Counter(conn.phase for conn in connections)
        return ControlServerStats(
            connections_open=len(connections),
            connections_total=c["total"],
            connections_refused=c["refused"],
            requests=self.requests,
            denied=self.dispatcher.denied,
            timed_out=c["timed_out"],
            bad_requests=c["bad_requests"],
            buffered_bytes=sum(len(conn.buffer) for conn in connections),
            reading=phases["reading"],
            idle=phases["idle"],
            stalled=phases["stalled"],
            sweeps=c["sweeps"],
            inline_calls=inline.inline_calls,
            inline_demotions=inline.demotions,
        )

    def wait_connections(self, at_most: int, timeout: float) -> bool:
        """Wait until at most ``at_most`` connections are open; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._connections) <= at_most, timeout)

    def wait_until(self, predicate: Callable[[ControlServerStats], bool], timeout: float) -> bool:
        """Wait until ``predicate(self.statistics())`` holds; False on timeout. It is checked
        again whenever a connection comes, is admitted or goes, and after every sweep."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.statistics()), timeout)

    def _transports(self) -> list[asyncio.Transport]:
        with self._changed:
            return [c.transport for c in self._connections if c.transport is not None]

    def _sweep(self) -> None:
        """Close the connections past their deadline, have the audit summaries that are due
        written; again in ``sweep_interval_s``."""
        now = self.clock.monotonic()
        for conn in [c for c in self._connections if c.deadline <= now]:
            conn.expire()
        if self.dispatcher.records.due():
            self.lanes.flush()
        self._counts["sweeps"] += 1
        with self._changed:
            self._changed.notify_all()  # for wait_until
        assert self._loop is not None
        self._loop.call_later(self._sweep_s, self._sweep)

    def _names_changed(self) -> None:
        """After a reload (a worker thread): user and group names and roles may differ."""
        self.peers.clear()
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.admission.forget_roles)

    # --- called from connections (loop thread) ---------------------------------------------

    def arrive(self, conn: Connection) -> str | None:
        """Count a new connection; the refusal's message if over the hard cap."""
        self._counts["total"] += 1
        refusal = self.admission.arrive()
        if refusal is not None:
            self._counts["refused"] += 1
            return refusal
        with self._changed:
            self._connections.add(conn)
            self._changed.notify_all()
        return None

    def refused(self, conn: Connection) -> None:
        """``conn`` was refused once identified (admission no longer counts it)."""
        self._counts["refused"] += 1
        with self._changed:
            self._connections.discard(conn)
            self._changed.notify_all()

    def forget(self, conn: Connection) -> None:
        with self._changed:
            if conn in self._connections:
                self._connections.discard(conn)
                self.admission.leave(conn.caller, conn.admin)
            self._changed.notify_all()

    def note_timeout(self) -> None:
        self._counts["timed_out"] += 1

    def note_bad_request(self, code: str) -> None:
        """A request refused before it reached a route: counted here and, as action
        ``unrouted``, in ``forgeone_control_requests``."""
        self._counts["bad_requests"] += 1
        stats = self.dispatcher.stats
        if stats is not None:
            stats.control_requests[(UNROUTED, code)] += 1
