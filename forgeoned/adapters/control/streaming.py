"""Streamed answers: a body of any length sent in chunks, in memory bounded per connection.

A route answers with a :class:`Stream` (an iterator of body pieces, e.g. audit entries read one
by one from disk) instead of one ``bytes`` body. The worker thread that served the request then
sends it with ``Transfer-Encoding: chunked``, pieces batched to about :data:`BATCH_BYTES`,
waiting after each batch until the connection's write buffer is below its high-water mark
(asyncio's write flow control). So the daemon holds at most about one batch plus the transport
buffer per streamed answer, whatever the length of the body, and a reader that stops reading
for ``timeout`` seconds is dropped instead of making the daemon buffer for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

log = logging.getLogger(__name__)

BATCH_BYTES: Final = 64 * 1024
LAST_CHUNK: Final = b"0\r\n\r\n"

# Send bytes on the connection and wait (bounded) until the peer has taken enough of them;
# False when the connection is gone or the peer did not read within the bound.
Send = Callable[[bytes], bool]


class Sent(enum.Enum):
    """A lane's answer that is not bytes for the connection to write."""

    WRITTEN = "written"  # the worker wrote the whole (streamed) answer itself
    HANDED_OFF = "handed off"  # a follower thread writes it, then finishes the connection


# A lane's answer: bytes to write, already sent, or None when building it failed (a bug,
# logged): the connection is then dropped.
Answer = bytes | Sent | None


@dataclass(frozen=True, slots=True)
class Stream:
    """A body produced piece by piece (each piece any length, e.g. one NDJSON line). An empty
    piece means "nothing more for now": what is pending is sent, and the connection is checked.
    ``follow``: the body never ends by itself (``audit follow``), it gets a thread of its own."""

    pieces: Iterable[bytes]
    follow: bool = False


@dataclass(frozen=True, slots=True)
class Streamed:
    """A response whose head is ready and whose body is still to be produced."""

    head: bytes
    pieces: Iterable[bytes]
    follow: bool = False


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def batches(pieces: Iterable[bytes], size: int = BATCH_BYTES) -> Generator[bytes, None, None]:
    """The pieces joined into batches of about ``size`` bytes (a larger piece goes alone); an
    empty piece flushes the batch, or passes on as an empty batch when there is none."""
    batch: list[bytes] = []
    held = 0
    source = iter(pieces)
    try:
        for piece in source:
            if not piece:
                yield b"".join(batch)
                batch, held = [], 0
                continue
            batch.append(piece)
            held += len(piece)
            if held >= size:
                yield b"".join(batch)
                batch, held = [], 0
        if batch:
            yield b"".join(batch)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def send_streamed(response: Streamed, send: Send) -> bool:
    """Write ``response`` through ``send``; True when all of it went out.

    A body that fails half way (an unreadable audit file) cannot be turned into an error
    status any more: the connection is then given up without the last chunk, which every
    HTTP client reports as a truncated answer rather than taking it as complete.
    """
    pending = response.head
    pieces = batches(response.pieces)
    try:
        for data in pieces:
            # an empty batch sends only what is pending (nothing: a check the peer is there)
            if not send(pending + chunk(data) if data else pending):
                return False
            pending = b""
    except Exception:  # the per-request boundary: log, and cut the answer short
        log.exception("streamed answer failed part way")
        return False
    finally:
        pieces.close()  # and with it the reader of the source (an open audit file)
    return send(pending + LAST_CHUNK)


class _Peer(Protocol):
    transport: asyncio.Transport | None
    write_paused: bool  # asyncio's write flow control: the transport's buffer is full

    def abort(self) -> None: ...


class PeerWriter:
    """Writes a streamed answer's batches on a connection from a worker thread, waiting after
    each until the peer has read enough of them."""

    def __init__(self, peer: _Peer) -> None:
        self.peer = peer
        self.loop: asyncio.AbstractEventLoop | None = None
        self._drained: list[asyncio.Future[bool]] = []  # writes waiting for the peer

    def send(self, data: bytes, timeout: float) -> bool:
        """Write ``data`` and wait until the transport's write buffer is below its high-water
        mark. False when the connection is gone, or the peer did not read for ``timeout``
        seconds: the connection is then aborted."""
        loop = self.loop
        if loop is None:
            return False
        coro = self._send(data)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop is closed: the server is shutting down
            coro.close()  # never to run (else a "never awaited" warning when collected)
            return False
        try:
            return future.result(timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            future.cancel()
            loop.call_soon_threadsafe(self.peer.abort)
            return False

    async def _send(self, data: bytes) -> bool:
        transport = self.peer.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        if not self.peer.write_paused:
            return True
        assert self.loop is not None
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._drained.append(waiter)
        return await waiter

    def wake(self, ok: bool) -> None:
        """The peer read (``ok``) or is gone: let the waiting writes go on (loop thread)."""
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(ok)
