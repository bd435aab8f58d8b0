"""The control API server: HTTP/1.1 + JSON on a Unix socket, one thread per connection.

Why this design: a control request is short and its work may block (invoke runs wasm,
install waits for a swap, the audit sink waits until an event is durable), so each admitted
connection is served start to finish by its own thread, which blocks in ``recv`` between
requests. Against an asyncio loop handing each request to a worker pool and back, this
removes two thread hand-offs per request; on the reference machine it measured about twice
the throughput and a third of the single-client latency (docs/performance.md). The number
of threads, and so of concurrent backend calls, is bounded by ``max_connections``: one
acceptor thread answers ``503 busy`` and closes anything over it.

Limits (see :mod:`control_connection`): head cap (431), body cap (413), whole request within
``read_timeout_s`` of its first byte (408, then closed), idle keep-alive connections and
unread answers dropped after ``idle_timeout_s``.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from forgeoned.adapters.control_connection import Connection
from forgeoned.adapters.control_dispatch import Dispatcher
from forgeoned.adapters.control_http import BusyError, error_response
from forgeoned.adapters.control_socket import PeerIdentifier, bind_control_socket
from forgeoned.core.control_config import ControlConfig
from forgeoned.core.policy import Policy
from forgeoned.core.ports import AuditSink, ControlBackend
from forgeoned.core.stats import DaemonStats

log = logging.getLogger(__name__)
_JOIN_TIMEOUT_S = 10.0
# Pending connections the kernel queues before accept (capped by net.core.somaxconn):
# bursts wait there instead of failing with EAGAIN; admission control happens after accept.
_BACKLOG = 1024
_BUSY_SEND_TIMEOUT_S = 1.0


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
        self.closing = False
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._acceptor: threading.Thread | None = None
        self._connections: dict[Connection, threading.Thread] = {}
        self._changed = threading.Condition()
        self._counts = {"total": 0, "refused": 0, "timed_out": 0}
        self._inode = -1

    @property
    def socket_path(self) -> str:
        return self.config.socket

    def start(self) -> None:
        """Bind the socket and start accepting; the socket accepts connections on return."""
        cfg = self.config
        listener = bind_control_socket(
            cfg.socket, cfg.mode, cfg.group, max(cfg.max_connections, _BACKLOG)
        )
        self._inode = Path(cfg.socket).lstat().st_ino
        self._listener = listener
        self._wake_r, self._wake_w = os.pipe()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="forgeoned-control-accept", daemon=True
        )
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting, end every connection, wait for running requests; idempotent."""
        if self.closing:
            return
        self.closing = True
        if self._acceptor is not None:
            os.write(self._wake_w, b"x")
            self._acceptor.join(_JOIN_TIMEOUT_S)
        with self._changed:
            running = list(self._connections.items())
        for conn, _ in running:
            conn.shutdown()
        for _, thread in running:
            thread.join(_JOIN_TIMEOUT_S)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
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
        with self._changed:
            c = dict(self._counts)
            open_now = len(self._connections)
        return ControlServerStats(
            connections_open=open_now,
            connections_total=c["total"],
            connections_refused=c["refused"],
            requests=self.dispatcher.requests,
            denied=self.dispatcher.denied,
            timed_out=c["timed_out"],
        )

    def wait_connections(self, at_most: int, timeout: float) -> bool:
        """Wait until at most ``at_most`` connections are open; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._connections) <= at_most, timeout)

    # --- the acceptor thread ---------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not self.closing:
                    for key, _ in selector.select():
                        if key.fileobj is listener and not self.closing:
                            self._accept(listener)
            finally:
                listener.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return  # another wake-up took it
        except OSError as exc:
            log.warning("control socket accept failed: %s", exc)
            return
        sock.setblocking(True)
        with self._changed:
            self._counts["total"] += 1
            admitted = len(self._connections) < self.config.max_connections
            if admitted:
                conn = Connection(self, sock)
                thread = threading.Thread(target=conn.run, name="forgeoned-control", daemon=True)
                self._connections[conn] = thread
            else:
                self._counts["refused"] += 1
        if admitted:
            thread.start()
            return
        busy = BusyError(f"too many connections (max {self.config.max_connections})")
        try:
            sock.settimeout(_BUSY_SEND_TIMEOUT_S)
            sock.sendall(error_response(busy, keep_alive=False))
        except OSError:
            pass
        finally:
            sock.close()

    # --- called from connection threads ----------------------------------------------------

    def note_timeout(self) -> None:
        with self._changed:
            self._counts["timed_out"] += 1

    def forget(self, conn: Connection) -> None:
        with self._changed:
            self._connections.pop(conn, None)
            self._changed.notify_all()
