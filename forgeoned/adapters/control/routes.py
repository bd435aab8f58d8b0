"""The control API's paths: which action each request is, and how the backend serves it.

``resolve`` is cheap and pure; a :class:`Route`'s ``run`` may block (invoke runs wasm, install
waits for the swap) and runs in one of the server's worker lanes, after authorisation. Time
comes from the context's clock (``since`` and the compliance report's "now").

| method | path | action |
| --- | --- | --- |
| GET | /v1/plugins | list |
| POST | /v1/plugins?filename=F&wait=S (raw artifact body) | install |
| GET | /v1/plugins/{name} | show |
| DELETE | /v1/plugins/{name} | remove |
| POST | /v1/plugins/{name}/{pause,resume,restart,reset,retry} | the same |
| POST | /v1/plugins/{name}/invoke?wait=S&fn=F (raw input, raw output) | invoke |
| POST | /v1/plugins/{name}/allow-downgrade ``{"version": V}`` | allow_downgrade |
| GET | /v1/plugins/{name}/evidence (a staging daemon's evidence) | show |
| POST | /v1/plugins/{name}/review ``{"note": TEXT}`` | review |
| POST | /v1/reload | reload |
| GET | /v1/keys | list (the trusted keys, revoked keys, thresholds) |
| GET | /v1/rejections | list (files in plugins.d refused now, with reasons) |
| GET | /v1/audit?since=T&format=json, ndjson or ocsf (streamed) | audit_read |
| GET | /v1/audit/verify | audit_verify |
| POST | /v1/audit/accept-gap | audit_accept_gap |
| POST | /v1/audit/rotate-key | audit_rotate_key |
| GET | /v1/audit/follow?from_seq=N&format=json or ocsf (streamed, never ends) | audit_read |
| GET | /v1/compliance?since=T&format=md or json | compliance_read |
| GET | /v1/whoami | (none: every caller may ask who it is) |
| GET | /v1/sources | list (the OCI sources followed, each with its last sync) |
| POST | /v1/sources/{name}/pull | pull (sync that source now; a failure is its SyncReason) |

An install answers 201 only when the uploaded sha256 runs, 202 when its outcome was not known
within ``wait`` seconds (``wait=0``: not waited for at all); every refusal is an error answer
whose ``code`` is the reason of the audit event that recorded it. A detached signature comes
base64-encoded in the ``X-Forgeone-Signature`` header, a staging attestation in the
``X-Forgeone-Attestation`` header (the body stays the raw module)::

    curl --unix-socket /run/forgeoned/control.sock --data-binary @hello.wasm \
         -H "X-Forgeone-Signature: $(base64 -w0 hello.wasm.sig)" \
         'http://localhost/v1/plugins?filename=hello.wasm'
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass

from forgeoned.adapters.control import audit_routes as audit
from forgeoned.adapters.control.audit_routes import parse_since
from forgeoned.adapters.control.context import Context, Handler, Reply
from forgeoned.adapters.control.http import RequestHead
from forgeoned.adapters.control.views import detail, summary
from forgeoned.core.hooks_manifest import IDENT_RE
from forgeoned.core.manifest import NAME_RE
from forgeoned.core.policy import NO_TARGET, Action, Target
from forgeoned.core.ports import INSTALL_WAIT_MAX_S, INSTALL_WAIT_S
from forgeoned.core.sources import SOURCE_NAME
from forgeoned.errors import (
    BadRequestError,
    HttpProtocolError,
    MethodNotAllowedError,
    NotFoundError,
    RequestProblem,
)

__all__ = ["Context", "Reply", "Route", "detail", "parse_since", "resolve", "summary"]

_VERBS = {
    "pause": Action.PAUSE,
    "resume": Action.RESUME,
    "restart": Action.RESTART,
    "reset": Action.RESET,
    "retry": Action.RETRY,
    "invoke": Action.INVOKE,
    "allow-downgrade": Action.ALLOW_DOWNGRADE,
}


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
    if len(parts) == 2 and resource == "keys":
        return _only(method, "GET", path, Route(Action.LIST, None, _keys))
    if len(parts) == 2 and resource == "rejections":
        return _only(method, "GET", path, Route(Action.LIST, None, _rejections))
    if len(parts) == 2 and resource == "audit":
        return _only(method, "GET", path, Route(Action.AUDIT_READ, None, audit.audit))
    if parts[1:] == ["audit", "accept-gap"]:
        return _only(method, "POST", path, Route(Action.AUDIT_ACCEPT_GAP, None, audit.accept_gap))
    if parts[1:] == ["audit", "rotate-key"]:
        return _only(method, "POST", path, Route(Action.AUDIT_ROTATE_KEY, None, audit.rotate_key))
    if parts[1:] == ["audit", "follow"]:
        return _only(method, "GET", path, Route(Action.AUDIT_READ, None, audit.follow))
    if parts[1:] == ["audit", "verify"]:
        return _only(method, "GET", path, Route(Action.AUDIT_VERIFY, None, audit.audit_verify))
    if len(parts) == 2 and resource == "compliance":
        return _only(method, "GET", path, Route(Action.COMPLIANCE_READ, None, audit.compliance))
    if len(parts) == 2 and resource == "sources":
        return _only(method, "GET", path, Route(Action.LIST, None, _sources))
    if len(parts) == 4 and resource == "sources" and parts[3] == "pull":
        if not SOURCE_NAME.match(parts[2]):
            raise BadRequestError(f"bad source name {parts[2][:80]!r}")
        return _only(method, "POST", path, Route(Action.PULL, None, _pull))
    if len(parts) == 2 and resource == "whoami":
        return _only(method, "GET", path, Route(None, None, _whoami))
    raise NotFoundError(f"no such endpoint {path!r}")


def _plugin_route(method: str, path: str, rest: list[str]) -> Route:
    if not rest:
        if method == "GET":
            return Route(Action.LIST, None, _list)
        return _only(method, "POST", path, Route(Action.INSTALL, None, _install))
    name = rest[0]
    if not NAME_RE.match(name):
        raise BadRequestError(f"bad plugin name {name[:80]!r}")
    if len(rest) == 1:
        if method == "DELETE":
            return Route(Action.REMOVE, name, _remove)
        return _only(method, "GET", path, Route(Action.SHOW, name, _show))
    if rest[1:] == ["evidence"]:
        return _only(method, "GET", path, Route(Action.SHOW, name, _evidence))
    if rest[1:] == ["review"]:
        return _only(method, "POST", path, Route(Action.REVIEW, name, _review))
    if len(rest) == 2 and rest[1] in _VERBS:
        action = _VERBS[rest[1]]
        special = {Action.INVOKE: _invoke, Action.ALLOW_DOWNGRADE: _allow_downgrade}
        handler = {**special, Action.RETRY: _retry}.get(action, _simple)
        return _only(method, "POST", path, Route(action, name, handler))
    raise NotFoundError(f"no such endpoint {path!r}")


def _only(method: str, wanted: str, path: str, route: Route) -> Route:
    if method != wanted:
        raise MethodNotAllowedError(f"{method} is not allowed on {path} (use {wanted})")
    return route


def _name(ctx: Context) -> str:
    assert ctx.plugin is not None  # resolve() put it there for every per-plugin route
    return ctx.plugin


MAX_NOTE = 4096  # characters of a review note
SIGNATURE_HEADER = "x-forgeone-signature"  # a detached signature, base64
ATTESTATION_HEADER = "x-forgeone-attestation"  # a staging attestation (DSSE JSON), base64


def _list(ctx: Context) -> Reply:
    conditional = any(g.when for g in ctx.policy.grants)  # rules that need the attributes

    def about(name: str) -> Target:
        return ctx.backend.plugin_target(name, None) if conditional else NO_TARGET

    views = [
        v
        for v in ctx.backend.list_plugins()
        if ctx.policy.authorize(ctx.caller, Action.LIST, v.name, about(v.name)).allowed
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
    query, headers = ctx.request.head.query, ctx.request.head.headers
    detached = None
    if (encoded := headers.get(SIGNATURE_HEADER)) is not None:
        try:
            detached = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise BadRequestError(f"{SIGNATURE_HEADER} is not base64: {exc}") from exc
    attestation = None
    if (encoded := headers.get(ATTESTATION_HEADER)) is not None:
        try:
            attestation = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise BadRequestError(f"{ATTESTATION_HEADER} is not base64: {exc}") from exc
    try:
        wait = float(query.get("wait", INSTALL_WAIT_S))
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= INSTALL_WAIT_MAX_S:
        raise BadRequestError(f"bad wait: seconds from 0 to {INSTALL_WAIT_MAX_S:g}")
    report = ctx.backend.install(
        ctx.request.body, filename, ctx.caller.actor, detached, wait, attestation
    )
    about = {"name": report.name, "version": report.version, "sha256": report.sha256}
    if report.running and report.view is not None:
        return Reply(201, {"outcome": "running", "installed": detail(report.view)})
    return Reply(202, {"outcome": "pending", "installed": None, "candidate": about})


def _remove(ctx: Context) -> Reply:
    ctx.backend.remove(_name(ctx), ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": "remove", "ok": True})


def _simple(ctx: Context) -> Reply:
    verb = ctx.request.head.path.rstrip("/").rsplit("/", 1)[1]
    method = getattr(ctx.backend, verb)
    method(_name(ctx), ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": verb, "ok": True})


def _retry(ctx: Context) -> Reply:
    view = ctx.backend.retry(_name(ctx), ctx.caller.actor)
    body = {"plugin": _name(ctx), "action": "retry", "ok": True}
    return Reply(200, {**body, "status": summary(view) if view is not None else None})


MAX_INVOKE_WAIT_S = 3600.0


def invoke_wait(query: dict[str, str]) -> float | None:
    """An invoke's ``wait`` (seconds), None when absent; BadRequestError if out of range."""
    raw = query.get("wait")
    if raw is None:
        return None
    try:
        wait_s = float(raw)
    except ValueError:
        wait_s = -1.0
    if not 0 <= wait_s <= MAX_INVOKE_WAIT_S:
        raise BadRequestError(f"bad wait {raw[:20]!r}: seconds, 0..{MAX_INVOKE_WAIT_S:g}")
    return wait_s


def _invoke(ctx: Context) -> Reply:
    wait_s = invoke_wait(ctx.request.head.query)
    function = invoked_function(ctx.request.head)
    return Reply(200, ctx.backend.invoke(_name(ctx), ctx.request.body, wait_s, function))


def invoked_function(head: RequestHead) -> str:
    """The ``fn`` of an invoke (``handle`` without one); BadRequest for a name no manifest
    could list."""
    return checked_function(head.query.get("fn", "handle"))


def checked_function(function: str) -> str:
    """``function`` if a manifest could list it (or ``handle``); else BadRequest."""
    if function != "handle" and not IDENT_RE.match(function):
        raise BadRequestError(f"bad function name {function[:80]!r} (expected {IDENT_RE.pattern})")
    return function


def _allow_downgrade(ctx: Context) -> Reply:
    version = ctx.request.json().get("version")
    if not isinstance(version, str) or not version:
        raise HttpProtocolError(RequestProblem.BAD_REQUEST, 'body must be {"version": "X.Y.Z"}')
    ctx.backend.allow_downgrade(_name(ctx), version, ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": "allow_downgrade", "version": version})


def _reload(ctx: Context) -> Reply:
    report = ctx.backend.reload(ctx.caller.actor)
    return Reply(200, {"action": "reload", "ok": True, **report})


def _keys(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.trusted_keys())


def _rejections(ctx: Context) -> Reply:
    # Like the plugin list: a caller sees the rejections of the plugins it may list, and
    # those no manifest names if it may list at all.
    rejected = [
        r
        for r in ctx.backend.rejected_files()
        if ctx.policy.authorize(ctx.caller, Action.LIST, r.get("plugin")).allowed
    ]
    return Reply(200, {"rejected": rejected})


def _evidence(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.evidence(_name(ctx)))


def _review(ctx: Context) -> Reply:
    note = ctx.request.json().get("note")
    if not isinstance(note, str) or not note.strip() or len(note) > MAX_NOTE:
        raise BadRequestError(f'a review needs a note: {{"note": TEXT}} (1..{MAX_NOTE} chars)')
    return Reply(200, ctx.backend.review(_name(ctx), note, ctx.caller.actor))


def _sources(ctx: Context) -> Reply:
    return Reply(200, {"sources": ctx.backend.sources()})


def _pull(ctx: Context) -> Reply:
    name = ctx.request.head.path.strip("/").split("/")[2]
    return Reply(200, ctx.backend.pull(name, ctx.caller.actor))


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
