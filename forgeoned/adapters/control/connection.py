"""One client connection of the control server: admission, framing, per-request limits.

A connection serves one request at a time: while one is being served, or while the peer is
not reading its answers (asyncio's write flow control), reading pauses and further bytes wait
in the kernel. The request head is judged as soon as it is in (route, authorisation, the
action's body cap), so a refused request's body is never buffered: the answer goes out at
once, the connection stops sending (``SHUT_WR``) and whatever the peer still sends is
discarded until it closes, at most ``read_timeout_s``. The connection's fields, deadlines and
the transitions shared by every phase (idle, linger, fail, expire) are in
:mod:`forgeoned.adapters.control.connection_state`.

A streamed answer is written from the worker that serves it (:meth:`Connection.send`), which
waits after each batch until the peer has read enough (asyncio's write flow control).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from forgeoned.adapters.control.connection_state import READING, ConnectionState, State
from forgeoned.adapters.control.http import (
    CONTINUE,
    Request,
    RequestHead,
    error_response,
)
from forgeoned.adapters.control.socket import credentials
from forgeoned.adapters.control.streaming import Answer, Sent
from forgeoned.adapters.control.verdict import Verdict, check
from forgeoned.core.policy import Caller, Policy
from forgeoned.errors import HttpProtocolError, RequestProblem

if TYPE_CHECKING:
    from forgeoned.adapters.control.server import ControlServer

log = logging.getLogger(__name__)

_VERDICTS = 64


class Connection(ConnectionState):
    def __init__(self, server: ControlServer) -> None:
        super().__init__(server)
        # verdicts by (method, path, invoked function) under one policy: they depend on
        # nothing else, since a connection's caller never changes (bounded: cleared when full
        # or the policy changes) -- unless a rule has attribute conditions: a plugin's signers
        # and labels change with its active version, so then every head is judged afresh
        self._verdicts: dict[tuple[str, str, str], Verdict] = {}
        self._policy: Policy | None = None
        self._cacheable = True
        self._advancing = False

    # --- admission ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.writer.loop = asyncio.get_running_loop()
        refusal = self.server.arrive(self)
        if refusal is not None:
            self._refuse(refusal)
            return
        self.deadline = self.clock.monotonic() + self.config.read_timeout_s
        try:
            self.credentials = credentials(transport.get_extra_info("socket"))
        except OSError:
            log.exception("cannot identify control peer")  # it stays unknown: no role
        caller = self.server.peers.cached(self.credentials)
        if caller is not None:
            self.identified(caller)
        else:  # a name look-up may block: done in the control lane
            transport.pause_reading()
            self.server.lanes.identify(self, self.credentials)

    def identified(self, caller: Caller | None) -> None:
        """The peer's names are known (loop thread); admit it or answer 503 and close."""
        transport = self.transport
        if transport is None or self.state is not State.IDENTIFYING:
            return
        if caller is None:  # the look-up failed (logged): numbers only, as for an unknown name
            c = self.credentials
            caller = Caller(uid=c.uid, gid=c.gid, pid=c.pid, gids=c.gids)
        admin, refusal = self.server.admission.admit(caller)
        if refusal is not None:
            self.server.refused(self)
            self._refuse(refusal)
            return
        self.caller, self.admin = caller, admin
        self._idle()
        transport.resume_reading()
        if self.buffer:
            self._advance()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        self.transport = None
        self.writer.wake(False)

    # --- reading ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is State.CLOSING or state is State.REFUSED:
            return  # discarded: nothing more will be answered
        self.buffer += data
        if state not in READING or self.write_paused:
            # The next request waits in the kernel, not here: this bounds what a pipelining
            # (or answer-ignoring) client can make us hold to one read's worth of bytes.
            assert self.transport is not None
            self.transport.pause_reading()
            return
        self._advance()

    def eof_received(self) -> bool:
        return False  # half-closed peers get no answer they could not read: close

    def _advance(self) -> None:
        """Take requests out of the buffer while this connection may go on."""
        if self._advancing or self.transport is None or self.state not in READING:
            return  # inside this very loop (an answer given at once), or nothing to read for
        self._advancing = True
        try:
            self._take()
        except HttpProtocolError as exc:
            self._fail(exc)
        finally:
            self._advancing = False
        if self.state is State.IDLE and self.buffer and not self.write_paused:
            # Answered at once and more is buffered (pipelined): give the other connections
            # a turn before this one's next request.
            asyncio.get_running_loop().call_soon(self._advance)

    def _take(self) -> None:
        if self.state is State.IDLE or self.state is State.HEAD:
            if self.state is State.IDLE:
                # the deadline first: an observer that sees the state sees it too
                self.deadline = self.clock.monotonic() + self.config.read_timeout_s
                self.state = State.HEAD
            head = self.reader.read_head(self.buffer)
            if head is None:
                return
            self._judge(head)
        if self.state is State.BODY:
            head, verdict = self.head, self.verdict
            assert head is not None and verdict is not None
            if len(self.buffer) < head.content_length:
                return
            body = self.reader.read_body(self.buffer, head.content_length)
            self.state = State.SERVING
            self.deadline = math.inf
            self.server.lanes.serve(self, verdict, Request(head, body))

    def _judge(self, head: RequestHead) -> None:
        """Decide on a request head before any of its body is taken."""
        caller = self.caller
        assert caller is not None and self.transport is not None
        self.server.requests += 1
        dispatcher = self.server.dispatcher
        if dispatcher.policy is not self._policy:  # a reload changed it: decide afresh
            self._verdicts.clear()
            self._policy = dispatcher.policy
            self._cacheable = not any(g.when for g in self._policy.grants)
        key = (head.method, head.path, head.query.get("fn", ""))
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = check(dispatcher.policy, dispatcher.caps, dispatcher.backend, caller, head)
            if len(self._verdicts) >= _VERDICTS:
                self._verdicts.clear()
            if self._cacheable:
                self._verdicts[key] = verdict
        unread = head.content_length > 0
        if verdict.error is not None:  # no such endpoint: answered now
            self.server.note_bad_request(verdict.error.code)
            keep = head.keep_alive and not unread
            self.state = State.SERVING
            self.finish(error_response(verdict.error, keep_alive=keep), keep, linger=unread)
        elif not verdict.allowed:  # recorded in the control lane, then answered, then closed
            self.state = State.SERVING
            self.deadline = math.inf
            self.server.lanes.deny(self, verdict, head)
        elif head.content_length > verdict.cap:
            raise HttpProtocolError(
                RequestProblem.BODY_TOO_LARGE,
                f"request body of {head.content_length} bytes is over the {verdict.cap} "
                "byte cap of this action",
            )
        else:
            self.head, self.verdict = head, verdict
            self.state = State.BODY
            if head.expect_continue and len(self.buffer) < head.content_length:
                self.transport.write(CONTINUE)

    # --- answering ----------------------------------------------------------------------------

    def send(self, data: bytes, timeout: float) -> bool:
        """Write part of a streamed answer from a worker thread (see :class:`PeerWriter`)."""
        return self.writer.send(data, timeout)

    def finish(self, data: Answer, keep_alive: bool, linger: bool = False) -> None:
        """Write an answer (loop thread); go on with the next request, or close: at once, or
        with ``linger`` after discarding what the peer still sends (its unread body)."""
        transport = self.transport
        if transport is None or transport.is_closing() or data is Sent.HANDED_OFF:
            return
        if not data:  # the worker failed to build an answer (logged there)
            transport.abort()
            return
        if data is not Sent.WRITTEN:
            transport.write(data)
        self.head = self.verdict = None
        if linger:
            self._linger()
        elif not keep_alive:
            transport.close()
        else:
            self._idle()
            if not self._advancing:
                self._next()

    def _next(self) -> None:
        """Go on with the next request, unless the peer is not reading its answers: then
        wait (bounded by the idle timeout) rather than pile up responses in memory."""
        transport = self.transport
        if transport is None or self.write_paused or self.state is not State.IDLE:
            return
        transport.resume_reading()
        if self.buffer:
            self._advance()

    def pause_writing(self) -> None:
        self.deadline = self.clock.monotonic() + self.config.idle_timeout_s
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.state is State.SERVING:  # a streamed answer goes on: its writer times it
            self.deadline = math.inf
        self.writer.wake(True)
        self._next()
