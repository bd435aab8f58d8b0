"""The control API's paths: which action each request is, and how the backend serves it.

``resolve`` is cheap and pure; a :class:`Route`'s ``run`` may block (invoke runs wasm, install
waits for the swap) and runs in one of the server's worker lanes, after authorisation. Time
comes from the context's clock (``since`` and the compliance report's "now").

| method | path | action |
| --- | --- | --- |
| GET | /v1/plugins | list |
| POST | /v1/plugins?filename=F (raw artifact body) | install |
| GET | /v1/plugins/{name} | show |
| DELETE | /v1/plugins/{name} | remove |
| POST | /v1/plugins/{name}/{pause,resume,restart,reset} | the same |
| POST | /v1/plugins/{name}/invoke (raw input, raw output) | invoke |
| POST | /v1/plugins/{name}/allow-downgrade ``{"version": V}`` | allow_downgrade |
| POST | /v1/reload | reload |
| GET | /v1/audit?since=T | audit_read |
| GET | /v1/audit/verify | audit_verify |
| GET | /v1/compliance?since=T&format=md or json | compliance_read |
| GET | /v1/whoami | (none: every caller may ask who it is) |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from forgeoned.adapters.control.http import HttpProtocolError, MethodNotAllowedError, Request
from forgeoned.core.clock import SystemClock
from forgeoned.core.compliance import build_report, render_json, render_markdown
from forgeoned.core.policy import Action, Caller, Policy
from forgeoned.core.ports import Clock, ControlBackend
from forgeoned.core.stats import PluginView
from forgeoned.core.timespec import parse_time
from forgeoned.errors import BadRequestError, NotFoundError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SYSTEM_CLOCK: Clock = SystemClock()
_VERBS = {
    "pause": Action.PAUSE,
    "resume": Action.RESUME,
    "restart": Action.RESTART,
    "reset": Action.RESET,
    "invoke": Action.INVOKE,
    "allow-downgrade": Action.ALLOW_DOWNGRADE,
}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # JSON-able value, or bytes sent as they are
    content_type: str = "application/octet-stream"  # for bytes bodies


@dataclass(frozen=True, slots=True)
class Context:
    backend: ControlBackend
    policy: Policy
    caller: Caller
    request: Request
    plugin: str | None
    clock: Clock = _SYSTEM_CLOCK


Handler = Callable[[Context], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    action: Action | None  # None: needs no authorisation (whoami)
    plugin: str | None
    run: Handler


def resolve(method: str, path: str) -> Route:
    """The route of a request, or NotFound/MethodNotAllowed/BadRequest."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "v1":
        raise NotFoundError(f"no such endpoint {path!r} (the API lives under /v1/)")
    resource = parts[1]
    if resource == "plugins":
        return _plugin_route(method, path, parts[2:])
    if len(parts) == 2 and resource == "reload":
        return _only(method, "POST", path, Route(Action.RELOAD, None, _reload))
    if len(parts) == 2 and resource == "audit":
        return _only(method, "GET", path, Route(Action.AUDIT_READ, None, _audit))
    if parts[1:] == ["audit", "verify"]:
        return _only(method, "GET", path, Route(Action.AUDIT_VERIFY, None, _audit_verify))
    if len(parts) == 2 and resource == "compliance":
        return _only(method, "GET", path, Route(Action.COMPLIANCE_READ, None, _compliance))
    if len(parts) == 2 and resource == "whoami":
        return _only(method, "GET", path, Route(None, None, _whoami))
    raise NotFoundError(f"no such endpoint {path!r}")


def _plugin_route(method: str, path: str, rest: list[str]) -> Route:
    if not rest:
        if method == "GET":
            return Route(Action.LIST, None, _list)
        return _only(method, "POST", path, Route(Action.INSTALL, None, _install))
    name = rest[0]
    if not _NAME.match(name):
        raise BadRequestError(f"bad plugin name {name[:80]!r}")
    if len(rest) == 1:
        if method == "DELETE":
            return Route(Action.REMOVE, name, _remove)
        return _only(method, "GET", path, Route(Action.SHOW, name, _show))
    if len(rest) == 2 and rest[1] in _VERBS:
        action = _VERBS[rest[1]]
        handler = {Action.INVOKE: _invoke, Action.ALLOW_DOWNGRADE: _allow_downgrade}.get(
            action, _simple
        )
        return _only(method, "POST", path, Route(action, name, handler))
    raise NotFoundError(f"no such endpoint {path!r}")


def _only(method: str, wanted: str, path: str, route: Route) -> Route:
    if method != wanted:
        raise MethodNotAllowedError(f"{method} is not allowed on {path} (use {wanted})")
    return route


def _name(ctx: Context) -> str:
    assert ctx.plugin is not None  # resolve() put it there for every per-plugin route
    return ctx.plugin


def summary(view: PluginView) -> dict[str, Any]:
    """The DESIGN §4 status entry of one plugin."""
    return {"name": view.name, "version": view.version, "state": view.state, "sha256": view.sha256}


def detail(view: PluginView) -> dict[str, Any]:
    stats = view.stats
    return {
        **summary(view),
        "signers": list(view.signers),
        "last_error": view.last_error,
        "limits": dict(view.limits),
        "instances": view.instances,
        "memory_bytes": view.memory_bytes,
        "counters": {
            "calls": [
                {"export": export, "outcome": outcome, "count": n}
                for (export, outcome), n in sorted(stats.calls.items())
            ],
            "hostcalls": [
                {"function": function, "outcome": outcome, "count": n}
                for (function, outcome), n in sorted(stats.hostcalls.items())
            ],
            "fuel_consumed": stats.fuel_consumed,
            "restarts": stats.restarts,
            "log_dropped": stats.log_dropped,
        },
    }


def _list(ctx: Context) -> Reply:
    views = [
        v
        for v in ctx.backend.list_plugins()
        if ctx.policy.authorize(ctx.caller, Action.LIST, v.name).allowed
    ]
    return Reply(200, {"plugins": [summary(v) for v in sorted(views, key=lambda v: v.name)]})


def _show(ctx: Context) -> Reply:
    return Reply(200, detail(ctx.backend.get_plugin(_name(ctx))))


def _install(ctx: Context) -> Reply:
    filename = ctx.request.head.query.get("filename", "upload.wasm")
    if "/" in filename or filename.startswith(".") or not filename.endswith(".wasm"):
        raise BadRequestError(f"bad filename {filename[:80]!r}: a plain NAME.wasm is needed")
    if not ctx.request.body:
        raise BadRequestError("empty upload: send the artifact as the request body")
    view = ctx.backend.install(ctx.request.body, filename, ctx.caller.actor)
    return Reply(201, {"installed": detail(view) if view is not None else None})


def _remove(ctx: Context) -> Reply:
    ctx.backend.remove(_name(ctx), ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": "remove", "ok": True})


def _simple(ctx: Context) -> Reply:
    verb = ctx.request.head.path.rstrip("/").rsplit("/", 1)[1]
    method = getattr(ctx.backend, verb)
    method(_name(ctx), ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": verb, "ok": True})


def _invoke(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.invoke(_name(ctx), ctx.request.body))


def _allow_downgrade(ctx: Context) -> Reply:
    version = ctx.request.json().get("version")
    if not isinstance(version, str) or not version:
        raise HttpProtocolError(400, "bad_request", 'body must be {"version": "X.Y.Z"}')
    ctx.backend.allow_downgrade(_name(ctx), version, ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": "allow_downgrade", "version": version})


def _reload(ctx: Context) -> Reply:
    ctx.backend.reload(ctx.caller.actor)
    return Reply(200, {"action": "reload", "ok": True})


def parse_since(text: str | None, now: float) -> float | None:
    """``since`` as :func:`forgeoned.core.timespec.parse_time` reads it at wall time ``now``;
    None when absent."""
    if text is None or text == "":
        return None
    return parse_time(text, now)


def _audit(ctx: Context) -> Reply:
    since = parse_since(ctx.request.head.query.get("since"), ctx.clock.wall())
    return Reply(200, {"entries": ctx.backend.audit_entries(since)})


def _audit_verify(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.audit_verify())


def _compliance(ctx: Context) -> Reply:
    query = ctx.request.head.query
    now = ctx.clock.wall()
    since = parse_since(query.get("since"), now)
    fmt = query.get("format", "md")
    if fmt not in ("md", "json"):
        raise BadRequestError(f"bad format {fmt[:20]!r}: md or json")
    backend = ctx.backend
    report = build_report(
        backend.audit_entries(None),
        backend.list_plugins(),
        backend.audit_verify(),
        since,
        now=now,
    )
    if fmt == "json":
        return Reply(200, render_json(report).encode(), "application/json")
    return Reply(200, render_markdown(report).encode(), "text/markdown; charset=utf-8")


def _whoami(ctx: Context) -> Reply:
    caller = ctx.caller
    allowed = [a.value for a in Action if ctx.policy.authorize(caller, a, None).allowed]
    return Reply(
        200,
        {
            "uid": caller.uid,
            "gid": caller.gid,
            "pid": caller.pid,
            "user": caller.user,
            "groups": sorted(caller.groups),
            "actor": caller.actor,
            "actions": allowed,
        },
    )
