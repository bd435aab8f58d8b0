"""The control API's routes of one plugin, and of the plugin list: list, show, install, remove,
the lifecycle verbs, invoke, allow-downgrade, evidence and review (see :mod:`.routes` for the
table). Also the checks of an invoke's query (``wait``, ``fn``), which the dispatcher runs on
the loop before an invoke is served at once.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Mapping

from forgeoned.adapters.control.context import Context, Reply
from forgeoned.adapters.control.http import RequestHead
from forgeoned.adapters.control.views import detail, summary
from forgeoned.core.hooks_manifest import IDENT_RE
from forgeoned.core.policy import NO_TARGET, Action, Target
from forgeoned.core.ports import INSTALL_WAIT_MAX_S, INSTALL_WAIT_S
from forgeoned.errors import BadRequestError, HttpProtocolError, RequestProblem

MAX_NOTE = 4096  # characters of a review note
SIGNATURE_HEADER = "x-forgeone-signature"  # a detached signature, base64
ATTESTATION_HEADER = "x-forgeone-attestation"  # a staging attestation (DSSE JSON), base64


def _name(ctx: Context) -> str:
    assert ctx.plugin is not None  # resolve() put it there for every per-plugin route
    return ctx.plugin


def list_plugins(ctx: Context) -> Reply:
    conditional = any(g.when for g in ctx.policy.grants)  # rules that need the attributes

    def about(name: str) -> Target:
        return ctx.backend.plugin_target(name, None) if conditional else NO_TARGET

    views = [
        v
        for v in ctx.backend.list_plugins()
        if ctx.policy.authorize(ctx.caller, Action.LIST, v.name, about(v.name)).allowed
    ]
    return Reply(200, {"plugins": [summary(v) for v in sorted(views, key=lambda v: v.name)]})


def show(ctx: Context) -> Reply:
    return Reply(200, detail(ctx.backend.get_plugin(_name(ctx))))


def _base64_header(headers: Mapping[str, str], name: str) -> bytes | None:
    """The bytes a base64 header carries (None if absent); 400 if it is not base64."""
    if (encoded := headers.get(name)) is None:
        return None
    try:
        return binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise BadRequestError(f"{name} is not base64: {exc}") from exc


def install(ctx: Context) -> Reply:
    filename = ctx.request.head.query.get("filename", "upload.wasm")
    if "/" in filename or filename.startswith(".") or not filename.endswith(".wasm"):
        raise BadRequestError(f"bad filename {filename[:80]!r}: a plain NAME.wasm is needed")
    if not ctx.request.body:
        raise BadRequestError("empty upload: send the artifact as the request body")
    query, headers = ctx.request.head.query, ctx.request.head.headers
    detached = _base64_header(headers, SIGNATURE_HEADER)
    attestation = _base64_header(headers, ATTESTATION_HEADER)
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


def remove(ctx: Context) -> Reply:
    ctx.backend.remove(_name(ctx), ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": "remove", "ok": True})


def simple(ctx: Context) -> Reply:
    verb = ctx.request.head.path.rstrip("/").rsplit("/", 1)[1]
    method = getattr(ctx.backend, verb)
    method(_name(ctx), ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": verb, "ok": True})


def retry(ctx: Context) -> Reply:
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


def invoke(ctx: Context) -> Reply:
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


def allow_downgrade(ctx: Context) -> Reply:
    version = ctx.request.json().get("version")
    if not isinstance(version, str) or not version:
        raise HttpProtocolError(RequestProblem.BAD_REQUEST, 'body must be {"version": "X.Y.Z"}')
    ctx.backend.allow_downgrade(_name(ctx), version, ctx.caller.actor)
    return Reply(200, {"plugin": _name(ctx), "action": "allow_downgrade", "version": version})


def evidence(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.evidence(_name(ctx)))


def review(ctx: Context) -> Reply:
    note = ctx.request.json().get("note")
    if not isinstance(note, str) or not note.strip() or len(note) > MAX_NOTE:
        raise BadRequestError(f'a review needs a note: {{"note": TEXT}} (1..{MAX_NOTE} chars)')
    return Reply(200, ctx.backend.review(_name(ctx), note, ctx.caller.actor))
