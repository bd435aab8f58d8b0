"""What the event loop decides on a request head, before any of its body is read.

:func:`check` runs as soon as a request's head has arrived: it routes and authorises (both pure
and cheap) and names the body cap of the action (:class:`BodyCaps`), so that a refused
request's body is never read. Rules with attribute conditions (functions, signers, labels) are
checked against the plugin's :class:`Target`, looked up only when the policy has such rules.
The :class:`Verdict` then goes with the request to
:class:`~forgeoned.adapters.control.dispatch.Dispatcher`, which serves or denies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from forgeoned.adapters.control.http import RequestHead
from forgeoned.adapters.control.plugin_routes import invoked_function
from forgeoned.adapters.control.routes import Route, resolve
from forgeoned.core.policy import NO_TARGET, Action, Caller, Decision, Policy, Target
from forgeoned.core.ports import ControlBackend
from forgeoned.errors import ForgeonedError


@dataclass(frozen=True, slots=True)
class BodyCaps:
    """The largest body each kind of request may send (checked on the head)."""

    install: int
    invoke: int
    other: int

    def of(self, action: Action | None) -> int:
        if action is Action.INSTALL:
            return self.install
        return self.invoke if action is Action.INVOKE else self.other


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`check` decided on a request head."""

    route: Route | None  # None: the request names no endpoint (``error`` says why)
    decision: Decision | None  # None: needs none (whoami), or not routed
    error: ForgeonedError | None = None
    cap: int = 0
    about: Target = NO_TARGET  # the plugin's attributes and the invoked function

    @property
    def function(self) -> str:
        """The invoked function (``handle`` unless a named one)."""
        return self.about.function or "handle"

    @property
    def allowed(self) -> bool:
        return self.route is not None and (self.decision is None or self.decision.allowed)


def check(
    policy: Policy, caps: BodyCaps, backend: ControlBackend, caller: Caller, head: RequestHead
) -> Verdict:
    """Route and authorise ``head`` (loop thread: pure, never blocks)."""
    try:
        route = resolve(head.method, head.path)
    except ForgeonedError as exc:
        return Verdict(None, None, exc)
    action = route.action
    if action is None:
        return Verdict(route, None, cap=caps.other)
    try:
        about = _target(policy, backend, action, route.plugin, head)
    except ForgeonedError as exc:
        return Verdict(None, None, exc)
    decision = policy.authorize(caller, action, route.plugin, about)
    return Verdict(route, decision, None, caps.of(action), about)


def _target(
    policy: Policy, backend: ControlBackend, action: Action, plugin: str | None, head: RequestHead
) -> Target:
    """What the rules may look at besides the plugin's name: the invoked function, and the
    plugin's signers and labels only when some rule has conditions (a view of the plugin is
    cheap but not free, and this runs on the loop for every request)."""
    if plugin is None:
        return NO_TARGET
    function = invoked_function(head) if action is Action.INVOKE else None
    if not any(g.when for g in policy.grants):
        return Target(function=function)
    return backend.plugin_target(plugin, function)
