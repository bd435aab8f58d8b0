"""The control server's worker lanes, and which one serves a request.

- the *invoke lane* (``INVOKE_WORKERS`` threads) serves ``invoke``;
- the *control lane* (``CONTROL_WORKERS`` threads) serves every other action, the refusals
  (each is audited) and the look-up of a new peer's user and group names.

So no number of invoke callers, however slow their plugin, delays ``status``, ``reload``,
``pause`` or ``remove`` beyond the control lane's own work. An invoke of a plugin whose calls
are known to be short runs on the loop thread itself when an instance is free at once
(:mod:`forgeoned.adapters.control.inline`). Every method here runs on the loop thread.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from forgeoned.adapters.control.dispatch import Dispatcher, Verdict
from forgeoned.adapters.control.http import Request, RequestHead
from forgeoned.adapters.control.pool import WorkerPool
from forgeoned.adapters.control.socket import Credentials, PeerIdentifier
from forgeoned.core.policy import Action, Caller

if TYPE_CHECKING:
    from forgeoned.adapters.control.connection import Connection

# Threads serving invokes: enough that a slow call (a plugin near its deadline) does not stall
# the others; more only adds GIL contention (2, 4 and 8 measured alike, 16 worse).
INVOKE_WORKERS: Final = 8
# Threads serving every other action: an install waiting for its swap leaves three more.
CONTROL_WORKERS: Final = 4


class Lanes:
    def __init__(self, dispatcher: Dispatcher, peers: PeerIdentifier) -> None:
        self.dispatcher = dispatcher
        self.peers = peers
        self._control = WorkerPool(CONTROL_WORKERS, "forgeoned-control")
        self._invoke = WorkerPool(INVOKE_WORKERS, "forgeoned-invoke")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
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
                out = dispatcher.invoke_now(verdict, request)
                if out is not None:
                    conn.finish(out, keep)
                    return
            lane = self._invoke
        else:
            lane = self._control
        lane.submit(
            lambda: dispatcher.serve(verdict, caller, request),
            lambda out: conn.finish(out, keep),
        )

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
