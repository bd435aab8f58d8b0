"""One control request, start to finish once its head is judged: serve, audit, answer.

:func:`~forgeoned.adapters.control.verdict.check` judges a request's head on the event loop
(route, authorisation, body cap). :meth:`Dispatcher.serve` and :meth:`Dispatcher.deny` run
in a worker lane (they may block: invoke runs wasm, install waits for a swap, the audit sink
returns only once an event is durable); :meth:`Dispatcher.invoke_now` may also run on the
loop thread (see :mod:`forgeoned.adapters.control.inline`). Every denied request is a 403
naming the rule plus a ``control.denied`` event (throttled per caller); every allowed
state-changing request is a ``control.action`` event with the actor, the rule that allowed it
and the outcome; invokes are counted into ``plugin.calls`` summaries
(:mod:`forgeoned.adapters.control.records`), per function; a call of a named function (a
provider hook) is also a ``control.action`` event of its own. A route may answer with a body
produced piece by piece (:class:`~forgeoned.adapters.control.streaming.Streamed`), which the
lane then sends.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from forgeoned.adapters.control.context import Context, Reply
from forgeoned.adapters.control.http import (
    Request,
    RequestHead,
    error_response,
    json_response,
    stream_head,
)
from forgeoned.adapters.control.http import response as http_response
from forgeoned.adapters.control.inline import InlinePolicy
from forgeoned.adapters.control.plugin_routes import invoke_wait
from forgeoned.adapters.control.records import ControlRecords
from forgeoned.adapters.control.routes import Route
from forgeoned.adapters.control.streaming import Stream, Streamed
from forgeoned.adapters.control.verdict import BodyCaps, Verdict, check
from forgeoned.core.call_feed import CallFeed
from forgeoned.core.call_ledger import CallLedger
from forgeoned.core.clock import SystemClock
from forgeoned.core.denial_throttle import DenialThrottle
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.policy import NO_TARGET, Action, Caller, Decision, Policy, Target
from forgeoned.core.ports import AuditSink, Clock, ControlBackend
from forgeoned.core.stats import CALL_FUEL, DaemonStats
from forgeoned.errors import ForbiddenError, ForgeonedError

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        backend: ControlBackend,
        audit: AuditSink,
        policy: Policy,
        caps: BodyCaps,
        stats: DaemonStats | None,
        clock: Clock | None = None,
        on_reload: Callable[[], None] | None = None,
        throttle: DenialThrottle | None = None,
        calls: CallLedger | None = None,
        feed: CallFeed | None = None,
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.caps = caps
        self.stats = stats
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.records = ControlRecords(audit, self.clock, throttle, calls, feed)
        self.inline = InlinePolicy(self.clock)
        self.on_reload = on_reload
        self.denied = 0
        self._lock = threading.Lock()

    def handle(self, caller: Caller, request: Request) -> bytes | Streamed:
        """A whole request on this thread: check, then serve or deny (for tools and tests;
        the server splits these steps between its loop and its lanes, and has its sweep write
        the due summaries)."""
        self.records.flush()
        head = request.head
        verdict = check(self.policy, self.caps, self.backend, caller, head)
        if verdict.error is not None:
            return error_response(verdict.error, keep_alive=head.keep_alive)
        if not verdict.allowed:
            return self.deny(verdict, caller, head, head.keep_alive)
        return self.serve(verdict, caller, request)

    def serve(self, verdict: Verdict, caller: Caller, request: Request) -> bytes | Streamed:
        """The response to an allowed request, or its head and the pieces of its body still
        to be produced (worker lane; never raises for the request's own faults)."""
        route = verdict.route
        assert route is not None
        if route.action is Action.INVOKE and verdict.function == "handle":
            out = self._invoke_at_once(route, caller, request, self.inline.lane_call, math.inf)
            if out is not None:
                return out
        ctx = Context(
            self.backend, self.policy, caller, request, route.plugin, self.clock, self.records.feed
        )
        return self._answer(
            route, caller, request, verdict.decision, lambda: route.run(ctx), about=verdict.about
        )

    def invoke_now(self, verdict: Verdict, caller: Caller, request: Request) -> bytes | None:
        """Answer an allowed invoke if the plugin can run it at once, timed for the inline
        policy as a loop-thread call; None (nothing done) if it cannot (or a named function
        is invoked: those are served in a lane)."""
        route = verdict.route
        assert route is not None
        if verdict.function != "handle":
            return None
        out = self._invoke_at_once(
            route, caller, request, self.inline.inline_call, self.inline.longest_s
        )
        assert not isinstance(out, Streamed)  # invoke answers are never streamed
        return out

    def _invoke_at_once(
        self,
        route: Route,
        caller: Caller,
        request: Request,
        timed: Callable[[str, float], None],
        longest_s: float,
    ) -> bytes | Streamed | None:
        """Run the invoke if an instance is free at once (and the plugin's calls cannot take
        longer than ``longest_s``), telling ``timed`` how long it took."""
        plugin = route.plugin
        assert plugin is not None
        clock = self.clock
        started = clock.monotonic()
        meter = CALL_FUEL
        meter.fuel = 0  # set by the plugin host if the plugin runs
        try:
            invoke_wait(request.head.query)  # a bad ``wait`` is a 400 even when not needed
            data = self.backend.invoke_now(plugin, request.body, longest_s)
        except Exception as exc:  # answered like the same fault of a queued call
            timed(plugin, clock.monotonic() - started)
            return self._outcome(route, caller, request, exc, started)
        if data is None:
            return None
        now = clock.monotonic()
        timed(plugin, now - started)
        self.records.called(caller, plugin, "ok", started, "handle", meter.fuel, now)
        if self.stats is not None:
            self.stats.control_requests[(Action.INVOKE.value, "ok")] += 1
        keep = request.head.keep_alive
        return http_response(200, data, content_type="application/octet-stream", keep_alive=keep)

    def _outcome(
        self, route: Route, caller: Caller, request: Request, exc: Exception, started: float
    ) -> bytes | Streamed:
        def fail() -> Reply:
            raise exc

        return self._answer(route, caller, request, None, fail, started)

    def _answer(
        self,
        route: Route,
        caller: Caller,
        request: Request,
        decision: Decision | None,
        run: Callable[[], Reply],
        started: float | None = None,
        about: Target = NO_TARGET,
    ) -> bytes | Streamed:
        keep = request.head.keep_alive
        action = route.action
        function = about.function or "handle"
        outcome = "ok"
        out: bytes | Streamed
        if started is None:
            started = self.clock.monotonic()
            CALL_FUEL.fuel = 0  # set by the plugin host if this is an invoke that runs
        try:
            reply = run()
        except ForgeonedError as exc:
            outcome = exc.code
            out = error_response(exc, keep_alive=keep)
        except Exception as exc:  # the per-request boundary: record and answer 500
            log.exception("control request %s %s failed", request.head.method, request.head.path)
            outcome = "internal"
            out = error_response(
                ForgeonedError(f"internal error: {type(exc).__name__}"), keep_alive=keep
            )
        else:
            if isinstance(reply.body, Stream):
                head = stream_head(reply.status, reply.content_type, keep_alive=keep)
                out = Streamed(head, reply.body.pieces, reply.body.follow)
            elif isinstance(reply.body, bytes):
                out = http_response(
                    reply.status, reply.body, content_type=reply.content_type, keep_alive=keep
                )
            else:
                out = json_response(reply.status, reply.body, keep_alive=keep)
        if action is Action.INVOKE and route.plugin is not None:
            self.records.called(caller, route.plugin, outcome, started, function, CALL_FUEL.fuel)
        if action is Action.RELOAD and outcome == "ok" and self.on_reload is not None:
            self.on_reload()  # user and group names may have changed as well
        if action is not None and decision is not None and _audited(action, about):
            fn = f" {about.function}" if about.function not in (None, "handle") else ""
            self.records.record(
                AuditEvent(
                    EventName.CONTROL_ACTION,
                    plugin=route.plugin,
                    actor=caller.actor,
                    reason=outcome,
                    message=f"{caller.actor} {action.value}{fn}: {outcome}",
                    details=_details(caller, request.head, action.value, decision.rule, about),
                )
            )
        if self.stats is not None and action is not None:
            self.stats.control_requests[(action.value, outcome)] += 1
        return out

    def deny(self, verdict: Verdict, caller: Caller, head: RequestHead, keep_alive: bool) -> bytes:
        """The 403 for a request refused on its head, recorded (worker lane)."""
        route, decision = verdict.route, verdict.decision
        assert route is not None and route.action is not None and decision is not None
        action, plugin = route.action, route.plugin
        with self._lock:
            self.denied += 1
        self.records.refused(
            caller.actor,
            AuditEvent(
                EventName.CONTROL_DENIED,
                plugin=plugin,
                actor=caller.actor,
                reason=decision.rule,
                message=decision.message,
                details=_details(caller, head, action.value, decision.rule, verdict.about),
            ),
        )
        if self.stats is not None:
            self.stats.control_requests[(action.value, "forbidden")] += 1
        exc = ForbiddenError(f"{decision.message} (rule {decision.rule})")
        return error_response(exc, keep_alive=keep_alive, rule=decision.rule)

    def close(self) -> None:
        """Write what is counted and not summarised yet (the server is closing)."""
        self.records.close()


def _audited(action: Action, about: Target) -> bool:
    """State changes are audited when allowed; so is every call of a named function (the
    audit trail of a provider hook carries the function's name)."""
    return action.changes_state or (about.function not in (None, "handle"))


def _details(
    caller: Caller, head: RequestHead, action: str, rule: str, about: Target = NO_TARGET
) -> dict[str, object]:
    extra: dict[str, object] = {}
    if about.function is not None:
        extra["function"] = about.function
    return extra | {
        "action": action,
        "rule": rule,
        "uid": caller.uid,
        "gid": caller.gid,
        "pid": caller.pid,
        "method": head.method,
        "path": head.path,
    }
