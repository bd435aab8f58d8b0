"""The control server's worker lanes, and which one serves a request.

- the *invoke lane* (``INVOKE_WORKERS`` threads) serves ``invoke``;
- the *control lane* (``CONTROL_WORKERS`` threads) serves every other action, the refusals
  (each is audited), the look-up of a new peer's user and group names and the writing of due
  audit summaries;
- the *follow lane*: one thread for each ``audit follow`` stream (it never ends by itself, so
  it must not hold a worker), at most ``MAX_FOLLOWERS``; more are answered 503 busy.

A streamed answer (:mod:`forgeoned.adapters.control.streaming`) is written by the worker that
served it, waiting on the peer after each batch, so its memory is bounded whatever its length.

So no number of invoke callers, however slow their plugin, delays ``status``, ``reload``,
``pause`` or ``remove`` beyond the control lane's own work. An invoke of a plugin whose calls
are known to be short runs on the loop thread itself when an instance is free at once
(:mod:`forgeoned.adapters.control.inline`). Every method here runs on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Final

from forgeoned.adapters.control.dispatch import Dispatcher
from forgeoned.adapters.control.http import Request, RequestHead, error_response
from forgeoned.adapters.control.pool import WorkerPool
from forgeoned.adapters.control.socket import Credentials, PeerIdentifier
from forgeoned.adapters.control.streaming import Answer, Sent, Streamed, send_streamed
from forgeoned.adapters.control.verdict import Verdict
from forgeoned.core.policy import Action, Caller
from forgeoned.errors import BusyError

if TYPE_CHECKING:
    from forgeoned.adapters.control.connection import Connection

# Threads serving invokes: enough that a slow call (a plugin near its deadline) does not stall
# the others; more only adds GIL contention (2, 4 and 8 measured alike, 16 worse).
INVOKE_WORKERS: Final = 8
# Threads serving every other action: an install waiting for its swap leaves three more.
CONTROL_WORKERS: Final = 4
MAX_FOLLOWERS: Final = 8

log = logging.getLogger(__name__)


class Lanes:
    def __init__(self, dispatcher: Dispatcher, peers: PeerIdentifier) -> None:
        self.dispatcher = dispatcher
        self.peers = peers
        self._control = WorkerPool(CONTROL_WORKERS, "forgeoned-control")
        self._invoke = WorkerPool(INVOKE_WORKERS, "forgeoned-invoke")
        self._followers = threading.BoundedSemaphore(MAX_FOLLOWERS)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._control.start(loop)
        self._invoke.start(loop)

    def shutdown(self, timeout: float) -> None:
        self._control.shutdown(timeout)
        self._invoke.shutdown(timeout)

    def identify(self, conn: Connection, creds: Credentials) -> None:
        """Look the peer's names up in the control lane; ``conn.identified`` gets them."""
        self._control.submit(lambda: self.peers.caller(creds), conn.identified)

    def serve(self, conn: Connection, verdict: Verdict, request: Request) -> None:
        """Serve an allowed request: an invoke on this thread if the inline policy lets it
        and an instance is free, else in its lane; the answer goes back to ``conn``."""
        route = verdict.route
        caller = conn.caller
        assert route is not None and caller is not None
        keep = request.head.keep_alive
        dispatcher = self.dispatcher
        if route.action is Action.INVOKE:
            assert route.plugin is not None
            if dispatcher.inline.eligible(route.plugin):
                out = dispatcher.invoke_now(verdict, caller, request)
                if out is not None:
                    conn.finish(out, keep)
                    return
            lane = self._invoke
        else:
            lane = self._control

        def job() -> Answer:
            out = dispatcher.serve(verdict, caller, request)
            return out if not isinstance(out, Streamed) else self._stream(conn, out, keep)

        lane.submit(job, lambda out: conn.finish(out, keep))

    def flush(self) -> None:
        """Write the audit summaries that are due, in the control lane."""
        self._control.submit(self.dispatcher.records.flush, _ignore)

    def _stream(self, conn: Connection, out: Streamed, keep: bool) -> Answer:
        """Send a streamed answer from this worker, or hand a follow stream to a thread of its
        own if fewer than ``MAX_FOLLOWERS`` run."""
        timeout = conn.config.idle_timeout_s
        if not out.follow:
            return Sent.WRITTEN if send_streamed(out, lambda d: conn.send(d, timeout)) else None
        if not self._followers.acquire(blocking=False):
            busy = BusyError(f"too many audit followers (max {MAX_FOLLOWERS})")
            return error_response(busy, keep_alive=False)

        def follow() -> None:
            try:
                ok = send_streamed(out, lambda d: conn.send(d, timeout))
            finally:
                self._followers.release()
            if not ok:
                log.warning("audit follower dropped (gone, or not reading for %gs)", timeout)
            loop = self._loop
            if loop is not None:
                answer = Sent.WRITTEN if ok else None
                with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                    loop.call_soon_threadsafe(conn.finish, answer, keep)

        threading.Thread(target=follow, name="forgeoned-follower", daemon=True).start()
        return Sent.HANDED_OFF

    def deny(self, conn: Connection, verdict: Verdict, head: RequestHead) -> None:
        """Record and answer a refusal in the control lane. Its body, if any, is never read:
        the connection then closes (discarding what the peer still sends)."""
        caller: Caller | None = conn.caller
        assert caller is not None
        unread = head.content_length > 0
        keep = head.keep_alive and not unread
        self._control.submit(
            lambda: self.dispatcher.deny(verdict, caller, head, keep),
            lambda out: conn.finish(out, keep, linger=unread),
        )


def _ignore(_: object) -> None:
    pass
