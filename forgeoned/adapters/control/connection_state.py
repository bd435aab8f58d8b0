"""A control connection's state and deadline, and the transitions every phase of it shares.

:class:`ConnectionState` holds what one connection knows (its transport, caller, buffer,
request reader, the head being served and its verdict) and moves it between the states of
:class:`State`: idle, refused, lingering (closing), failed, expired.
:class:`~forgeoned.adapters.control.connection.Connection` builds the asyncio protocol's flow
(admission, reading, answering) on it.

Deadlines, not timers: one deadline per connection on the injected clock, checked by the
server's sweep (:meth:`ConnectionState.expire`): ``read_timeout_s`` from a request's first byte
to its last (408, close) and for identifying the peer; ``idle_timeout_s`` between requests
(close) and for answers the peer does not read (abort).
"""

from __future__ import annotations

import asyncio
import enum
import math
from typing import TYPE_CHECKING

from forgeoned.adapters.control.http import RequestHead, error_response
from forgeoned.adapters.control.parser import RequestReader
from forgeoned.adapters.control.socket import UNKNOWN_PEER
from forgeoned.adapters.control.streaming import PeerWriter
from forgeoned.adapters.control.verdict import Verdict
from forgeoned.core.policy import Caller
from forgeoned.errors import BusyError, HttpProtocolError, RequestProblem

if TYPE_CHECKING:
    from forgeoned.adapters.control.server import ControlServer


class State(enum.Enum):
    REFUSED = "refused"  # over the hard cap: answered 503, never counted
    IDENTIFYING = "identifying"  # the peer's names are being looked up (reading paused)
    IDLE = "idle"  # between requests
    HEAD = "head"  # bytes of a request head arrived
    BODY = "body"  # the head was allowed; its body is arriving
    SERVING = "serving"  # handed to a lane, or being answered
    CLOSING = "closing"  # answered and closing: input discarded until EOF or the deadline


READING = frozenset({State.IDLE, State.HEAD, State.BODY})


class ConnectionState(asyncio.Protocol):
    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.config = server.config
        self.clock = server.clock
        self.transport: asyncio.Transport | None = None
        self.credentials = UNKNOWN_PEER
        self.caller: Caller | None = None  # set once admitted
        self.admin = False
        self.state = State.IDENTIFYING
        self.deadline = math.inf
        self.buffer = bytearray()
        self.reader = RequestReader(self.config.max_header_bytes)
        self.head: RequestHead | None = None
        self.verdict: Verdict | None = None
        self.write_paused = False  # the peer does not read its answers fast enough
        self.writer = PeerWriter(self)

    def _refuse(self, message: str) -> None:
        assert self.transport is not None
        self.state = State.REFUSED
        self.transport.write(error_response(BusyError(message), keep_alive=False))
        self.transport.close()

    def abort(self) -> None:  # the PeerWriter's peer
        if self.transport is not None:
            self.transport.abort()

    def _idle(self) -> None:
        self.deadline = self.clock.monotonic() + self.config.idle_timeout_s
        self.state = State.IDLE

    def _fail(self, exc: HttpProtocolError) -> None:
        self.server.note_bad_request(exc.code)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(error_response(exc, keep_alive=False))
            self._linger()

    def _linger(self) -> None:
        """Stop sending, discard input until the peer closes (bounded by the read timeout)."""
        transport = self.transport
        assert transport is not None
        self.deadline = self.clock.monotonic() + self.config.read_timeout_s
        self.state = State.CLOSING
        self.buffer.clear()
        if transport.can_write_eof():
            transport.write_eof()
        else:  # pragma: no cover - every stream socket transport can
            transport.close()
        transport.resume_reading()

    @property
    def phase(self) -> str:
        """For statistics: ``reading``, ``idle``, ``stalled`` (answers unread), or the state."""
        if self.write_paused:
            return "stalled"
        state = self.state
        return "reading" if state is State.HEAD or state is State.BODY else state.value

    def expire(self) -> None:
        """The deadline passed (the server's sweep, loop thread)."""
        transport = self.transport
        self.deadline = math.inf
        if transport is None:
            return
        state = self.state
        if state is State.HEAD or state is State.BODY:
            self.server.note_timeout()
            limit = self.config.read_timeout_s
            self._fail(
                HttpProtocolError(RequestProblem.TIMEOUT, f"request not received within {limit}s")
            )
        elif state is State.IDLE and not transport.get_write_buffer_size():
            transport.close()
        else:  # lingering, identifying, or answers never read: drop rather than wait
            transport.abort()
