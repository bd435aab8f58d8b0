"""One control request, start to finish: route, authorise, serve, audit, answer.

Runs in a worker thread of the server's pool (it may block: invoke runs wasm, install waits
for a swap, the audit sink returns only once an event is durable). Every denied request is a
403 naming the rule plus a ``control.denied`` event; every allowed state-changing request is
a ``control.action`` event with the actor, the rule that allowed it and the outcome.
"""

from __future__ import annotations

import logging
import threading

from forgeoned.adapters.control.http import Request, RequestHead, error_response, json_response
from forgeoned.adapters.control.http import response as http_response
from forgeoned.adapters.control.routes import Context, Route, invoked_function, resolve
from forgeoned.adapters.control.socket import PeerIdentifier
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.policy import NO_TARGET, Action, Caller, Decision, Policy, Target
from forgeoned.core.ports import AuditSink, ControlBackend
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import ForbiddenError, ForgeonedError

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        backend: ControlBackend,
        audit: AuditSink,
        policy: Policy,
        peers: PeerIdentifier,
        stats: DaemonStats | None,
    ) -> None:
        self.backend = backend
        self.audit = audit
        self.policy = policy
        self.peers = peers
        self.stats = stats
        self.denied = 0
        self.requests = 0
        self._lock = threading.Lock()

    def handle(self, caller: Caller, request: Request) -> bytes:
        """The whole response to ``request`` (never raises for a request's own faults)."""
        head = request.head
        with self._lock:
            self.requests += 1
        try:
            route = resolve(head.method, head.path)
        except ForgeonedError as exc:
            return error_response(exc, keep_alive=head.keep_alive)
        if route.action is None:
            return self._serve(route, caller, request, None)
        about = NO_TARGET
        try:
            if route.plugin is not None:
                function = invoked_function(request) if route.action is Action.INVOKE else None
                about = self.backend.plugin_target(route.plugin, function)
        except ForgeonedError as exc:
            return error_response(exc, keep_alive=head.keep_alive)
        decision = self.policy.authorize(caller, route.action, route.plugin, about)
        if not decision.allowed:
            return self._deny(route.action, route.plugin, caller, head, decision, about)
        return self._serve(route, caller, request, decision, about)

    def _serve(
        self,
        route: Route,
        caller: Caller,
        request: Request,
        decision: Decision | None,
        about: Target = NO_TARGET,
    ) -> bytes:
        keep = request.head.keep_alive
        action = route.action
        ctx = Context(self.backend, self.policy, caller, request, route.plugin)
        outcome = "ok"
        try:
            reply = route.run(ctx)
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
            if isinstance(reply.body, bytes):
                out = http_response(
                    reply.status, reply.body, content_type=reply.content_type, keep_alive=keep
                )
            else:
                out = json_response(reply.status, reply.body, keep_alive=keep)
        if action is Action.RELOAD and outcome == "ok":
            self.peers.clear()  # user and group names may have changed as well
        if action is not None and decision is not None and _audited(action, about):
            fn = f" {about.function}" if about.function not in (None, "handle") else ""
            self._record(
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

    def _deny(
        self,
        action: Action,
        plugin: str | None,
        caller: Caller,
        head: RequestHead,
        decision: Decision,
        about: Target = NO_TARGET,
    ) -> bytes:
        with self._lock:
            self.denied += 1
        self._record(
            AuditEvent(
                EventName.CONTROL_DENIED,
                plugin=plugin,
                actor=caller.actor,
                reason=decision.rule,
                message=decision.message,
                details=_details(caller, head, action.value, decision.rule, about),
            )
        )
        if self.stats is not None:
            self.stats.control_requests[(action.value, "forbidden")] += 1
        exc = ForbiddenError(f"{decision.message} (rule {decision.rule})")
        return error_response(exc, keep_alive=head.keep_alive, rule=decision.rule)

    def _record(self, event: AuditEvent) -> None:
        try:
            self.audit.record(event)
        except Exception:  # an audit failure must not kill the request's thread
            log.exception("could not record %s", event.event.label)


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
