"""One client connection of the control server: buffering, parsing and per-request limits.

A connection serves one request at a time: while one is being served, or while the peer is
not reading its answers (asyncio's write flow control), reading pauses and further bytes wait
in the kernel. One timer per connection guards the limits: ``read_timeout_s`` from the first
byte of a request until its last (408 and close), ``idle_timeout_s`` between requests on a
keep-alive connection (close) and for answers the peer does not read (abort).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import TYPE_CHECKING

from forgeoned.adapters.control.http import (
    CONTINUE,
    Request,
    RequestHead,
    error_response,
    parse_head,
)
from forgeoned.adapters.control.socket import UNKNOWN_PEER, credentials
from forgeoned.core.policy import Caller
from forgeoned.errors import BusyError, ForgeonedError, HttpProtocolError, RequestProblem

if TYPE_CHECKING:
    from forgeoned.adapters.control.server import ControlServer

log = logging.getLogger(__name__)


class Connection(asyncio.Protocol):
    """One client connection: buffers bytes, parses one request at a time, enforces limits."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.config = server.config
        self.transport: asyncio.Transport | None = None
        self.credentials = UNKNOWN_PEER
        self._caller: Caller | None = None
        self.buffer = bytearray()
        self.head: RequestHead | None = None
        self.busy = False  # a request is being served
        self.timer: asyncio.TimerHandle | None = None
        self.partial = False  # bytes of an unfinished request arrived
        self.refused = False
        self.write_paused = False  # the peer does not read its answers fast enough
        self.loop: asyncio.AbstractEventLoop | None = None
        self._drained: list[asyncio.Future[bool]] = []  # streamed writes waiting for the peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        if not self.server.admit(self):
            self.refused = True
            busy = BusyError(f"too many connections (max {self.config.max_connections})")
            transport.write(error_response(busy, keep_alive=False))
            transport.close()
            return
        try:
            self.credentials = credentials(transport.get_extra_info("socket"))
        except OSError:
            log.exception("cannot identify control peer")  # it stays unknown: no role
        self._arm(self.config.idle_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.server.forget(self)
        self.transport = None
        self._wake_writers(False)

    def caller(self) -> Caller:
        """The peer with user and group names (worker thread; resolved once, then cached)."""
        caller = self._caller
        if caller is None:
            caller = self._caller = self.server.peers.caller(self.credentials)
        return caller

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.buffer += data
        if self.busy or self.write_paused:
            # The next request waits in the kernel, not here: this bounds what a pipelining
            # (or answer-ignoring) client can make us hold to one read's worth of bytes.
            assert self.transport is not None
            self.transport.pause_reading()
            return
        self._parse()

    def _parse(self) -> None:
        cfg = self.config
        transport = self.transport
        if transport is None or not self.buffer:
            return
        if not self.partial:
            self.partial = True
            self._arm(cfg.read_timeout_s)
        try:
            if self.head is None and not self._take_head(transport):
                return
        except HttpProtocolError as exc:
            self._fail(exc)
            return
        head = self.head
        assert head is not None
        if len(self.buffer) < head.content_length:
            return
        body = bytes(self.buffer[: head.content_length])
        del self.buffer[: head.content_length]
        self.head = None
        self.partial = False
        self.busy = True
        self._disarm()
        self.server.submit(self, Request(head, body))

    def _take_head(self, transport: asyncio.Transport) -> bool:
        """Parse the request head if it is all there; False while more bytes are needed."""
        cfg = self.config
        end = self.buffer.find(b"\r\n\r\n", 0, cfg.max_header_bytes + 4)
        if end < 0:
            if len(self.buffer) > cfg.max_header_bytes:
                raise HttpProtocolError(
                    RequestProblem.HEADERS_TOO_LARGE,
                    f"request head over the {cfg.max_header_bytes} byte cap",
                )
            return False
        self.head = parse_head(bytes(self.buffer[:end]), cfg.max_body_bytes)
        del self.buffer[: end + 4]
        if self.head.expect_continue and len(self.buffer) < self.head.content_length:
            transport.write(CONTINUE)
        return True

    def send(self, data: bytes, timeout: float) -> bool:
        """Write part of a streamed answer from a worker thread and wait until the peer has
        read enough of it (the transport's write buffer is below its high-water mark).
        False when the connection is gone, or the peer did not read for ``timeout`` seconds:
        the connection is then aborted."""
        loop = self.loop
        if loop is None:
            return False
        try:
            future = asyncio.run_coroutine_threadsafe(self._send(data), loop)
        except RuntimeError:  # the loop is closed: the server is shutting down
            return False
        try:
            return future.result(timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            future.cancel()
            loop.call_soon_threadsafe(self.abort)
            return False

    async def _send(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        if not self.write_paused:
            return True
        assert self.loop is not None
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._drained.append(waiter)
        return await waiter

    def _wake_writers(self, ok: bool) -> None:
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(ok)

    def finish(self, data: bytes | None, keep_alive: bool) -> None:
        """Write a response (loop thread); go on with the next request or close. ``None``:
        the worker has written a streamed answer itself."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if data is not None and not data:  # the worker failed to build an answer (logged)
            transport.abort()
            return
        if data is not None:
            transport.write(data)
        self.busy = False
        if not keep_alive:
            transport.close()
            return
        self._next()

    def _next(self) -> None:
        """Go on with the next request, unless the peer is not reading its answers: then
        wait (bounded by the idle timeout) rather than pile up responses in memory."""
        transport = self.transport
        if transport is None:
            return
        if self.write_paused:
            self._arm(self.config.idle_timeout_s)
            return
        transport.resume_reading()
        if self.buffer:
            self._parse()
        else:
            self._arm(self.config.idle_timeout_s)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writers(True)
        if not self.busy:
            self._next()

    def _fail(self, exc: ForgeonedError) -> None:
        assert self.transport is not None
        self._disarm()
        self.transport.write(error_response(exc, keep_alive=False))
        self.transport.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.transport is None or self.busy:
            return
        if self.partial:
            self.server.note_timeout()
            limit = self.config.read_timeout_s
            self._fail(
                HttpProtocolError(RequestProblem.TIMEOUT, f"request not received within {limit}s")
            )
        elif self.transport.get_write_buffer_size():
            self.transport.abort()  # answers never read: drop them rather than wait forever
        else:
            self.transport.close()
