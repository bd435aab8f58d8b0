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

from dataclasses import dataclass

from forgeoned.adapters.control import audit_routes as audit
from forgeoned.adapters.control.context import Handler
from forgeoned.adapters.control.daemon_routes import keys, pull, rejections, reload, sources, whoami
from forgeoned.adapters.control.plugin_routes import (
    allow_downgrade,
    evidence,
    install,
    invoke,
    list_plugins,
    remove,
    retry,
    review,
    show,
    simple,
)
from forgeoned.core.manifest import NAME_RE
from forgeoned.core.policy import Action
from forgeoned.core.sources import SOURCE_NAME
from forgeoned.errors import BadRequestError, MethodNotAllowedError, NotFoundError

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
        return _only(method, "POST", path, Route(Action.RELOAD, None, reload))
    if len(parts) == 2 and resource == "keys":
        return _only(method, "GET", path, Route(Action.LIST, None, keys))
    if len(parts) == 2 and resource == "rejections":
        return _only(method, "GET", path, Route(Action.LIST, None, rejections))
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
        return _only(method, "GET", path, Route(Action.LIST, None, sources))
    if len(parts) == 4 and resource == "sources" and parts[3] == "pull":
        if not SOURCE_NAME.match(parts[2]):
            raise BadRequestError(f"bad source name {parts[2][:80]!r}")
        return _only(method, "POST", path, Route(Action.PULL, None, pull))
    if len(parts) == 2 and resource == "whoami":
        return _only(method, "GET", path, Route(None, None, whoami))
    raise NotFoundError(f"no such endpoint {path!r}")


def _plugin_route(method: str, path: str, rest: list[str]) -> Route:
    if not rest:
        if method == "GET":
            return Route(Action.LIST, None, list_plugins)
        return _only(method, "POST", path, Route(Action.INSTALL, None, install))
    name = rest[0]
    if not NAME_RE.match(name):
        raise BadRequestError(f"bad plugin name {name[:80]!r}")
    if len(rest) == 1:
        if method == "DELETE":
            return Route(Action.REMOVE, name, remove)
        return _only(method, "GET", path, Route(Action.SHOW, name, show))
    if rest[1:] == ["evidence"]:
        return _only(method, "GET", path, Route(Action.SHOW, name, evidence))
    if rest[1:] == ["review"]:
        return _only(method, "POST", path, Route(Action.REVIEW, name, review))
    if len(rest) == 2 and rest[1] in _VERBS:
        action = _VERBS[rest[1]]
        special = {Action.INVOKE: invoke, Action.ALLOW_DOWNGRADE: allow_downgrade}
        handler = {**special, Action.RETRY: retry}.get(action, simple)
        return _only(method, "POST", path, Route(action, name, handler))
    raise NotFoundError(f"no such endpoint {path!r}")


def _only(method: str, wanted: str, path: str, route: Route) -> Route:
    if method != wanted:
        raise MethodNotAllowedError(f"{method} is not allowed on {path} (use {wanted})")
    return route
