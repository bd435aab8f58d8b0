"""Paths → actions, and each route's work against a hand-written fake backend."""

from __future__ import annotations

import json
from typing import Any

import pytest
from control_fakes import SIGNED_MAGIC, FakeBackend

from forgeoned.adapters.control.audit_routes import parse_since
from forgeoned.adapters.control.context import Context
from forgeoned.adapters.control.parser import parse_request
from forgeoned.adapters.control.routes import resolve
from forgeoned.adapters.control.streaming import Stream
from forgeoned.core.clock import ManualClock
from forgeoned.core.control_config import parse_control_config
from forgeoned.core.policy import Action, Caller, Policy
from forgeoned.errors import (
    BadRequestError,
    HttpProtocolError,
    MethodNotAllowedError,
    NotFoundError,
    PluginPausedError,
    SignatureError,
)

CLOCK = ManualClock()  # wall time 1,700,000,000 (2023-11-14T22:13:20Z)
ROOT = Caller(uid=0, gid=0, pid=1, user="root")
BOB = Caller(uid=1001, gid=1001, pid=2, user="bob", groups=frozenset({"billing"}))


@pytest.mark.parametrize(
    ("method", "path", "action", "plugin"),
    [
        ("GET", "/v1/plugins", Action.LIST, None),
        ("POST", "/v1/plugins", Action.INSTALL, None),
        ("GET", "/v1/plugins/hello", Action.SHOW, "hello"),
        ("DELETE", "/v1/plugins/hello", Action.REMOVE, "hello"),
        ("POST", "/v1/plugins/hello/pause", Action.PAUSE, "hello"),
        ("POST", "/v1/plugins/hello/resume", Action.RESUME, "hello"),
        ("POST", "/v1/plugins/hello/restart", Action.RESTART, "hello"),
        ("POST", "/v1/plugins/hello/reset", Action.RESET, "hello"),
        ("POST", "/v1/plugins/hello/invoke", Action.INVOKE, "hello"),
        ("POST", "/v1/plugins/hello/allow-downgrade", Action.ALLOW_DOWNGRADE, "hello"),
        ("POST", "/v1/reload", Action.RELOAD, None),
        ("GET", "/v1/audit", Action.AUDIT_READ, None),
        ("GET", "/v1/audit/verify", Action.AUDIT_VERIFY, None),
        ("GET", "/v1/compliance", Action.COMPLIANCE_READ, None),
        ("GET", "/v1/whoami", None, None),
    ],
)
def test_resolve(method: str, path: str, action: Action | None, plugin: str | None) -> None:
    route = resolve(method, path)
    assert (route.action, route.plugin) == (action, plugin)


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "/", NotFoundError),
        ("GET", "/v2/plugins", NotFoundError),
        ("GET", "/v1/nothing", NotFoundError),
        ("POST", "/v1/plugins/hello/explode", NotFoundError),
        ("GET", "/v1/plugins/hello/pause", MethodNotAllowedError),
        ("PUT", "/v1/plugins", MethodNotAllowedError),
        ("GET", "/v1/reload", MethodNotAllowedError),
        ("GET", "/v1/plugins/Bad..Name!", BadRequestError),
    ],
)
def test_resolve_errors(method: str, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        resolve(method, path)


def call(
    backend: FakeBackend,
    method: str,
    target: str,
    body: bytes = b"",
    caller: Caller = ROOT,
    policy: Policy | None = None,
) -> tuple[int, Any]:
    request = parse_request(
        f"{method} {target} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    route = resolve(request.head.method, request.head.path)
    ctx = Context(backend, policy or Policy(), caller, request, route.plugin, CLOCK)
    reply = route.run(ctx)
    return reply.status, reply.body


def test_list_is_sorted_and_in_design_shape() -> None:
    backend = FakeBackend.with_plugins("zeta", "alpha")
    status, body = call(backend, "GET", "/v1/plugins")
    assert status == 200
    assert [p["name"] for p in body["plugins"]] == ["alpha", "zeta"]
    design = {"name", "version", "state", "sha256"}  # DESIGN §4: kept, with fields added
    added = {"candidates", "last_error", "last_error_code", "last_error_at", "quarantine"}
    assert set(body["plugins"][0]) == design | added
    assert body["plugins"][0]["candidates"] == [] and body["plugins"][0]["quarantine"] is None


def test_list_is_filtered_by_a_scoped_rule() -> None:
    policy = parse_control_config(
        {"rules": [{"group": "billing", "roles": ["viewer"], "plugins": ["billing-*"]}]}
    ).policy
    backend = FakeBackend.with_plugins("billing-a", "hello")
    _, body = call(backend, "GET", "/v1/plugins", caller=BOB, policy=policy)
    assert [p["name"] for p in body["plugins"]] == ["billing-a"]


def test_show_has_details() -> None:
    _, body = call(FakeBackend.with_plugins("hello"), "GET", "/v1/plugins/hello")
    assert body["signers"] == ["dev"] and "counters" in body and "limits" in body


def test_action_and_invoke_and_downgrade() -> None:
    backend = FakeBackend.with_plugins("hello")
    assert call(backend, "POST", "/v1/plugins/hello/pause") == (
        200,
        {"plugin": "hello", "action": "pause", "ok": True},
    )
    assert backend.plugins["hello"].state == "paused"
    with pytest.raises(PluginPausedError):
        call(backend, "POST", "/v1/plugins/hello/invoke", b"abc")
    assert call(backend, "POST", "/v1/plugins/hello/invoke?wait=1.5", b"abc") == (200, b"ABC")
    assert ("invoke_wait", "hello", "1.5") in backend.calls
    for bad in ("-1", "soon", "3601", "nan"):
        with pytest.raises(BadRequestError):
            call(backend, "POST", f"/v1/plugins/hello/invoke?wait={bad}", b"abc")
    call(backend, "POST", "/v1/plugins/hello/allow-downgrade", b'{"version": "0.9.0"}')
    assert backend.calls[-1] == ("allow_downgrade", "hello", "0.9.0", "uid=0(root)")


def test_bad_downgrade_body_changes_nothing() -> None:
    backend = FakeBackend.with_plugins("hello")
    for body in (b"{bad", b'{"version": 3}', b"[]"):
        with pytest.raises(HttpProtocolError) as info:
            call(backend, "POST", "/v1/plugins/hello/allow-downgrade", body)
        assert info.value.status == 400
    assert backend.calls == []


def test_install_checks_filename_and_passes_bytes() -> None:
    backend = FakeBackend()
    status, body = call(backend, "POST", "/v1/plugins?filename=new.wasm", SIGNED_MAGIC + b"new")
    assert status == 201 and body["installed"]["name"] == "new"
    assert backend.written == {"new.wasm": SIGNED_MAGIC + b"new"}
    for target in (
        "/v1/plugins?filename=../x.wasm",
        "/v1/plugins?filename=.x.wasm",
        "/v1/plugins?filename=x.txt",
    ):
        with pytest.raises(BadRequestError):
            call(backend, "POST", target, SIGNED_MAGIC + b"other")
    with pytest.raises(BadRequestError, match="empty upload"):
        call(backend, "POST", "/v1/plugins?filename=a.wasm")
    with pytest.raises(SignatureError):
        call(backend, "POST", "/v1/plugins?filename=a.wasm", b"\0asm unsigned")
    assert list(backend.written) == ["new.wasm"]


def test_parse_since() -> None:
    now = CLOCK.wall()
    assert parse_since(None, now) is None and parse_since("", now) is None
    assert parse_since("1700000000.5", now) == 1700000000.5
    assert parse_since("2023-11-14T22:13:20Z", now) == 1700000000.0
    assert parse_since("2023-11-14T22:13:20", now) == 1700000000.0
    assert parse_since("2h", now) == now - 7200
    with pytest.raises(BadRequestError, match="bad time"):
        parse_since("yesterday", now)


def test_audit_since_reads_the_injected_clock() -> None:
    backend = FakeBackend.with_plugins("hello")
    backend.audit_log = [
        {"seq": 1, "ts": "2023-11-14T20:13:20Z"},  # two hours before the clock's "now"
        {"seq": 2, "ts": "2023-11-14T22:03:20Z"},  # ten minutes before
    ]
    _, body = call(backend, "GET", "/v1/audit?since=1h")
    assert isinstance(body, Stream)  # streamed from disk, never all in memory
    entries = json.loads(b"".join(body.pieces))["entries"]
    assert [e["seq"] for e in entries] == [2]


def test_compliance_formats() -> None:
    backend = FakeBackend.with_plugins("hello")
    status, body = call(backend, "GET", "/v1/compliance?format=json")
    assert status == 200 and json.loads(body)["current"][0]["plugin"] == "hello"
    status, body = call(backend, "GET", "/v1/compliance")
    assert status == 200 and body.startswith(b"#")
    with pytest.raises(BadRequestError, match="bad format 'pdf'"):
        call(backend, "GET", "/v1/compliance?format=pdf")
