"""SO_PEERCRED with a real unprivileged uid: a child process runs as nobody (65534) and
tries the control API; every refusal is a 403 naming the rule, a control.denied event, and
no change in the backend."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from control_harness import SIGNED_MAGIC, config, running

from forgeoned.core.events import EventName

NOBODY = 65534
ACTOR = "uid=65534(nobody)"

# (method, path, body): one request per action of the API
EVERY_ACTION: list[tuple[str, str, str]] = [
    ("GET", "/v1/plugins", ""),
    ("GET", "/v1/plugins/hello", ""),
    ("POST", "/v1/plugins?filename=x.wasm", SIGNED_MAGIC.decode("latin-1") + "x"),
    ("DELETE", "/v1/plugins/hello", ""),
    ("POST", "/v1/plugins/hello/pause", ""),
    ("POST", "/v1/plugins/hello/resume", ""),
    ("POST", "/v1/plugins/hello/restart", ""),
    ("POST", "/v1/plugins/hello/reset", ""),
    ("POST", "/v1/plugins/hello/allow-downgrade", '{"version": "0.1.0"}'),
    ("POST", "/v1/plugins/hello/invoke", "data"),
    ("POST", "/v1/reload", ""),
    ("GET", "/v1/audit", ""),
    ("GET", "/v1/audit/verify", ""),
    ("GET", "/v1/compliance?format=json", ""),
]


def request_once(path: str, method: str, target: str, body: str) -> list[Any]:
    """One request on a fresh connection: [status, error body or None] ([0, …] if refused)."""
    data = body.encode("latin-1")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        return [0, {"code": type(exc).__name__}]
    sock.sendall(
        f"{method} {target} HTTP/1.1\r\nContent-Length: {len(data)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + data
    )
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    sock.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    try:
        error = json.loads(payload).get("error")
    except (ValueError, AttributeError):
        error = None
    return [int(head.split()[1]), error]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory nobody can traverse (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="forgeoned-rbac-") as tmp:
        Path(tmp).chmod(0o755)
        yield Path(tmp)


def as_nobody(sock: str, requests: list[tuple[str, str, str]]) -> list[list[Any]]:
    """Fork a child that drops to nobody:nogroup (no supplementary groups) and sends
    ``requests``; its results come back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = json.dumps([request_once(sock, *req) for req in requests])
        except BaseException as exc:
            out, code = json.dumps({"child_error": repr(exc)}), 1
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(out)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()  # EOF when the child exits (its socket calls time out in 10 s)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    result: list[list[Any]] = json.loads(text)
    return result


def test_unprivileged_user_is_refused_every_action(shared_dir: Path) -> None:
    cfg = config(
        shared_dir / "c.sock",
        mode="0666",  # let nobody reach the socket so that RBAC is what refuses
        bindings=[{"name": "ops", "group": "ops-team-that-does-not-exist", "roles": ["admin"]}],
    )
    with running(cfg) as (server, backend, sink):
        results = as_nobody(server.socket_path, EVERY_ACTION)
    # throttled per caller: the first 10 one by one, the rest in one summary (here at close)
    denied = sink.named(EventName.CONTROL_DENIED)
    summary = denied.pop()
    assert summary.reason == "throttled" and summary.actor == ACTOR
    assert summary.details["suppressed"] == len(EVERY_ACTION) - 10
    assert len(results) == len(EVERY_ACTION)
    for (method, target, _), (status, error) in zip(EVERY_ACTION, results, strict=True):
        assert status == 403, (method, target)
        assert error["code"] == "forbidden"
        assert error["rule"] == "default-deny"
        assert error["message"].startswith(f"{ACTOR} may not ")
    assert len(denied) == 10
    assert all(e.actor == ACTOR and e.reason == "default-deny" for e in denied)
    assert denied[0].details["uid"] == NOBODY and denied[0].details["pid"] > 0
    # nothing changed, nothing ran, nothing was written
    assert backend.calls == [] and backend.written == {}
    assert {n: p.state for n, p in backend.plugins.items()} == {
        "hello": "running",
        "billing-a": "running",
    }
    assert sink.named(EventName.CONTROL_ACTION) == []


def test_socket_permissions_keep_others_out_entirely(shared_dir: Path) -> None:
    with running(config(shared_dir / "c.sock", mode="0660")) as (server, backend, sink):
        results = as_nobody(server.socket_path, EVERY_ACTION[:1])
    assert results == [[0, {"code": "PermissionError"}]]
    assert sink.events == [] and backend.calls == []


def test_operator_scoped_to_billing_touching_another_plugin(shared_dir: Path) -> None:
    cfg = config(
        shared_dir / "c.sock",
        mode="0666",
        rules=[
            {
                "name": "billing-team",
                "group": "nogroup",
                "actions": ["pause", "invoke"],
                "plugins": ["billing-*"],
            }
        ],
    )
    requests = [  # invoke first: a paused plugin would refuse it (409 paused), RBAC aside
        ("POST", "/v1/plugins/billing-a/invoke", "abc"),
        ("POST", "/v1/plugins/billing-a/pause", ""),
        ("POST", "/v1/plugins/hello/pause", ""),
        ("POST", "/v1/plugins/hello/invoke", "abc"),
        ("DELETE", "/v1/plugins/billing-a", ""),
        ("POST", "/v1/reload", ""),
    ]
    with running(cfg) as (server, backend, sink):
        results = as_nobody(server.socket_path, requests)
        actions = sink.named(EventName.CONTROL_ACTION)
        denied = sink.named(EventName.CONTROL_DENIED)
    assert [status for status, _ in results] == [200, 200, 403, 403, 403, 403]
    assert all(err["rule"] == "default-deny" for _, err in results[2:])
    assert "on plugin 'hello'" in results[2][1]["message"]
    assert backend.plugins["billing-a"].state == "paused"
    assert backend.plugins["hello"].state == "running"
    assert backend.calls == [("pause", "billing-a", ACTOR)]
    (action,) = actions  # invoke is not state-changing, so only the pause is audited
    assert (action.plugin, action.actor, action.reason) == ("billing-a", ACTOR, "ok")
    assert action.details["rule"] == "billing-team"
    assert [(e.plugin, e.details["action"]) for e in denied] == [
        ("hello", "pause"),
        ("hello", "invoke"),
        ("billing-a", "remove"),
        (None, "reload"),
    ]
