"""One client connection of the control server, served start to finish by its own thread.

Reading enforces every per-request limit with socket timeouts: the first byte of a request
must come within ``idle_timeout_s`` (else the connection closes quietly), the whole request
within ``read_timeout_s`` of that first byte (else 408 and close: a slow-loris client holds
one connection slot for at most that long), the head is capped (431) and the body is capped
before it is read (413). Writing a response must finish within ``idle_timeout_s``, so a
client that never reads its answers is dropped instead of holding memory. Pipelined bytes
stay in the connection's buffer for the next round.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import TYPE_CHECKING

from forgeoned.adapters.control_http import (
    CONTINUE,
    HttpProtocolError,
    Request,
    RequestHead,
    error_response,
    parse_head,
)
from forgeoned.core.policy import Caller

if TYPE_CHECKING:
    from forgeoned.adapters.control_server import ControlServer

log = logging.getLogger(__name__)
_RECV = 65536


class _Closed(Exception):
    """The connection is over (peer gone, timed out, or answered with a final error)."""


class Connection:
    def __init__(self, server: ControlServer, sock: socket.socket) -> None:
        self.server = server
        self.config = server.config
        self.sock = sock
        self.buffer = bytearray()
        self.caller = Caller(uid=-1, gid=-1, pid=0)

    def run(self) -> None:
        """The thread's body: requests until the peer leaves, a limit trips, or shutdown."""
        server = self.server
        try:
            self.caller = server.peers.identify(self.sock)
            while not server.closing:
                request = self._read_request()
                out = server.dispatcher.handle(self.caller, request)
                self._send(out)
                if not request.head.keep_alive:
                    break
        except (_Closed, OSError):
            pass
        except Exception:  # the per-connection boundary: never let a bug kill silently
            log.exception("control connection failed")
        finally:
            self.sock.close()
            server.forget(self)

    def shutdown(self) -> None:
        """Wake the thread out of a blocking read (called by the server when closing)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # --- reading -----------------------------------------------------------------------------

    def _read_request(self) -> Request:
        cfg = self.config
        if not self.buffer:
            self._recv(cfg.idle_timeout_s, idle=True)
        deadline = time.monotonic() + cfg.read_timeout_s
        try:
            head = self._read_head(deadline)
            body_end = head.content_length
            if head.expect_continue and len(self.buffer) < body_end:
                self._send(CONTINUE)
            while len(self.buffer) < body_end:
                self._recv_until(deadline)
        except HttpProtocolError as exc:
            self._send(error_response(exc, keep_alive=False))
            raise _Closed from exc
        body = bytes(self.buffer[:body_end])
        del self.buffer[:body_end]
        return Request(head, body)

    def _read_head(self, deadline: float) -> RequestHead:
        cap = self.config.max_header_bytes
        while True:
            end = self.buffer.find(b"\r\n\r\n", 0, cap + 4)
            if end >= 0:
                break
            if len(self.buffer) > cap:
                raise HttpProtocolError(
                    431, "headers_too_large", f"request head over the {cap} byte cap"
                )
            self._recv_until(deadline)
        head = parse_head(bytes(self.buffer[:end]), self.config.max_body_bytes)
        del self.buffer[: end + 4]
        return head

    def _recv_until(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            self._too_slow()
        self._recv(left, idle=False)

    def _recv(self, timeout: float, *, idle: bool) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(_RECV)
        except TimeoutError:
            if idle:
                raise _Closed from None  # an idle keep-alive connection: close quietly
            self._too_slow()
        if not data:
            raise _Closed
        self.buffer += data

    def _too_slow(self) -> None:
        self.server.note_timeout()
        limit = self.config.read_timeout_s
        raise HttpProtocolError(408, "timeout", f"request not received within {limit}s")

    # --- writing -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.sock.settimeout(self.config.idle_timeout_s)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise _Closed from None  # the peer does not read its answers
