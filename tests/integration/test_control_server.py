"""The real control server on a real Unix socket, with a fake backend: HTTP behaviour,
limits and the bad inputs of issue 5 (each proving the error and that nothing changed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from control_harness import SIGNED_MAGIC, FakeBackend, ManualClock, config, running
from waiting import poll_until

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.control.inline import PROBATION
from forgeoned.adapters.control.server import ControlServer
from forgeoned.core.events import EventName
from forgeoned.core.policy import Policy
from forgeoned.errors import ArtifactError, ForbiddenError, NotFoundError, StateError

BOUND = 10.0  # seconds any single wait in these tests may take at most


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)  # blocking: waits in the listen backlog like any real client
    sock.settimeout(BOUND)
    return sock


_PENDING: dict[int, bytes] = {}  # bytes read past one response, per socket


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = _PENDING.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += sock.recv(65536)
    if rest[length:]:
        _PENDING[sock.fileno()] = rest[length:]
    return int(lines[0].split()[1]), headers, rest[:length]


def exchange(path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(path) as sock:
        sock.sendall(raw)
        return read_response(sock)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_list_show_invoke_over_keep_alive(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock")) as (server, _backend, _):
        with ControlClient(server.socket_path) as client:
            names = [p["name"] for p in client.list_plugins()]
            assert names == ["billing-a", "hello"]
            assert client.show("hello")["state"] == "running"
            assert client.invoke("hello", b"abc") == b"ABC"
            assert client.invoke("hello", b"") == b""
        assert server.statistics().connections_total == 1  # one connection for all of it


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock")) as (server, _, _):
        req = b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: 1\r\n\r\n"
        with connect(server.socket_path) as sock:
            sock.sendall(req + b"a" + req + b"b" + b"GET /v1/plugins/nope HTTP/1.1\r\n\r\n")
            assert read_response(sock)[::2] == (200, b"A")
            assert read_response(sock)[::2] == (200, b"B")
            assert read_response(sock)[0] == 404


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_unix_socket(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock")) as (server, backend, _):

        def curl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["curl", "-sS", "--unix-socket", server.socket_path, *args],
                check=True,
                capture_output=True,
                text=True,
                timeout=BOUND,
            )

        listed = curl("http://localhost/v1/plugins")
        assert json.loads(listed.stdout)["plugins"][1]["name"] == "hello"
        out = curl("-X", "POST", "--data-binary", "hi", "http://localhost/v1/plugins/hello/invoke")
        assert out.stdout == "HI"
        paused = curl("-X", "POST", "http://localhost/v1/plugins/hello/pause")
        assert json.loads(paused.stdout) == {"action": "pause", "ok": True, "plugin": "hello"}
        assert backend.plugins["hello"].state == "paused"
        # a large upload: curl sends Expect: 100-continue and waits for it
        big = tmp_path / "big.wasm"
        big.write_bytes(SIGNED_MAGIC + b"big" + b"\0" * 0)
        upload = curl(
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            f"@{big}",
            "http://localhost/v1/plugins?filename=big.wasm",
        )
        assert json.loads(upload.stdout)["installed"]["name"] == "big"


def test_unknown_plugin_is_404_and_nothing_changes(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock")) as (server, backend, _sink):
        for method, path in (
            ("GET", "/v1/plugins/ghost"),
            ("POST", "/v1/plugins/ghost/pause"),
            ("DELETE", "/v1/plugins/ghost"),
            ("POST", "/v1/plugins/ghost/invoke"),
        ):
            status, _, body = exchange(
                server.socket_path, f"{method} {path} HTTP/1.1\r\n\r\n".encode()
            )
            assert status == 404
            assert json.loads(body)["error"] == {
                "code": "not_found",
                "message": "no plugin named 'ghost'",
            }
        assert backend.calls == [] and set(backend.plugins) == {"hello", "billing-a"}
        with ControlClient(server.socket_path) as client, pytest.raises(NotFoundError):
            client.show("ghost")


def test_malformed_json_is_400_and_nothing_changes(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock")) as (server, backend, sink):
        body = b'{"version": '
        status, _, answer = exchange(
            server.socket_path,
            b"POST /v1/plugins/hello/allow-downgrade HTTP/1.1\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body,
        )
        assert status == 400
        error = json.loads(answer)["error"]
        assert error["code"] == "malformed_json"
        assert error["message"].startswith("malformed JSON body:")
        assert backend.calls == []
        # the attempt is still audited as an allowed admin action that failed
        (event,) = sink.named(EventName.CONTROL_ACTION)
        assert event.reason == "malformed_json"


def test_oversized_body_is_413_before_reading_it_and_connection_closed(tmp_path: Path) -> None:
    cfg = config(tmp_path / "c.sock", max_body_bytes=1024)
    with running(cfg) as (server, backend, _):
        with connect(server.socket_path) as sock:
            sock.sendall(
                b"POST /v1/plugins?filename=x.wasm HTTP/1.1\r\nContent-Length: 1025\r\n\r\n"
            )
            status, headers, body = read_response(sock)
            assert status == 413 and headers["connection"] == "close"
            assert json.loads(body)["error"]["code"] == "body_too_large"
            assert closed_by_peer(sock)
        assert backend.written == {} and backend.calls == []


def test_oversized_head_is_431(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock", max_header_bytes=256)) as (server, _backend, _):
        status, _, body = exchange(
            server.socket_path, b"GET /v1/plugins HTTP/1.1\r\nX-Junk: " + b"a" * 300 + b"\r\n"
        )
        assert status == 431 and json.loads(body)["error"]["code"] == "headers_too_large"


def test_slow_loris_is_closed_after_the_read_timeout_and_others_are_served(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with running(config(tmp_path / "c.sock", read_timeout_s=5), clock=clock) as (server, _, _):
        slow = connect(server.socket_path)
        slow.sendall(b"GET /v1/plugins HTTP/1.1\r\nX-A: ")  # ... and never finishes
        assert server.wait_until(lambda s: s.reading == 1, BOUND)
        clock.advance(4.9)  # not yet
        with ControlClient(server.socket_path) as client:
            assert client.invoke("hello", b"x") == b"X"  # served meanwhile
        swept = server.statistics().sweeps
        assert server.wait_until(lambda s: s.sweeps > swept + 1, BOUND)
        assert server.statistics().timed_out == 0
        clock.advance(0.2)
        status, _, body = read_response(slow)  # the next sweep gives up on it
        assert status == 408 and json.loads(body)["error"]["code"] == "timeout"
        assert closed_by_peer(slow)
        slow.close()
        assert server.statistics().timed_out == 1
        assert server.wait_connections(0, BOUND)


def test_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    clock = ManualClock()
    with running(config(tmp_path / "c.sock", idle_timeout_s=60), clock=clock) as (server, _, _):
        with connect(server.socket_path) as sock:
            assert server.wait_until(lambda s: s.idle == 1, BOUND)
            clock.advance(59)
            swept = server.statistics().sweeps
            assert server.wait_until(lambda s: s.sweeps > swept + 1, BOUND)
            assert server.statistics().idle == 1  # still there
            clock.advance(2)
            assert closed_by_peer(sock)  # no bytes ever: closed silently
        assert server.wait_connections(0, BOUND)


def test_a_thousand_concurrent_connections_are_bounded(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    cfg = config(tmp_path / "c.sock", max_connections=50)
    with running(cfg) as (server, _, _):
        socks: list[socket.socket] = []
        try:
            check_thousand(server, socks)
        finally:
            for sock in socks:
                sock.close()
        assert server.wait_connections(0, BOUND)
        with ControlClient(server.socket_path) as client:
            assert client.invoke("hello", b"still") == b"STILL"
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2


def check_thousand(server: ControlServer, socks: list[socket.socket]) -> None:
    socks.extend(connect(server.socket_path) for _ in range(1000))
    busy = 0
    for sock in socks[50:]:
        status, _, body = read_response(sock)
        assert status == 503 and json.loads(body)["error"]["code"] == "busy"
        busy += 1
    assert busy == 950
    # the admitted ones all work, and the server stays responsive
    for sock in socks[:50]:
        sock.sendall(b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
    assert all(read_response(s)[::2] == (200, b"OK") for s in socks[:50])
    stats = server.statistics()
    assert stats.connections_open == 50 and stats.connections_refused == 950


def test_install_of_unsigned_or_tampered_artifact_is_rejected(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock")) as (server, backend, sink):
        with ControlClient(server.socket_path) as client:
            for data in (b"\0asm\1\0\0\0", b"X" + SIGNED_MAGIC + b"evil"):
                with pytest.raises(ArtifactError, match="not signed"):
                    client.install(data, "evil.wasm")
        assert backend.written == {} and set(backend.plugins) == {"hello", "billing-a"}
        assert [e.reason for e in sink.named(EventName.CONTROL_ACTION)] == ["unsigned"] * 2


def test_socket_mode_group_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "run" / "c.sock"
    with running(config(path, group="nogroup", mode="0660")) as (_server, _, _):
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == 65534
        assert not [p for p in path.parent.iterdir() if p.name != "c.sock"]  # no temp left
    assert not path.exists()


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays; nobody listens
    with running(config(path)) as (server, _, _):
        with ControlClient(server.socket_path) as client:
            assert len(client.list_plugins()) == 2


def test_live_socket_or_regular_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with running(config(path)) as (server, _backend, _):
        second = FakeBackend.with_plugins("other")
        with pytest.raises(StateError, match="in use by another process"):
            with running(config(path), second):
                pass
        with ControlClient(server.socket_path) as client:  # the first one still serves
            assert [p["name"] for p in client.list_plugins()] == ["billing-a", "hello"]
    other = tmp_path / "file.sock"
    other.write_text("keep me")
    with pytest.raises(StateError, match="exists and is not a socket"):
        with running(config(other)):
            pass
    assert other.read_text() == "keep me"


def test_client_that_never_reads_its_answers_is_dropped(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = config(tmp_path / "c.sock", idle_timeout_s=30)
    with running(cfg, clock=clock) as (server, backend, _):
        sock = connect(server.socket_path)
        sock.setblocking(False)
        burst = b"GET /v1/plugins/hello HTTP/1.1\r\n\r\n" * 1000
        sent = 0
        while sent < 50_000_000:  # bounded; the server stops reading long before this
            try:
                sent += sock.send(burst)
            except BlockingIOError:
                break  # kernel buffers full both ways: the server stopped reading
        assert sent < 50_000_000
        assert server.wait_until(lambda s: s.stalled == 1, BOUND)
        clock.advance(31)
        assert server.wait_connections(0, BOUND)  # dropped after the idle timeout
        sock.close()
        with ControlClient(server.socket_path) as client:
            assert client.show("hello")["name"] == "hello"
        assert backend.calls == []


def test_closing_an_old_server_leaves_a_newer_socket_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    old_cfg = config(path)
    with running(old_cfg) as (old, _, _):
        path.unlink()  # e.g. an operator cleaned up; a new daemon binds the same path
        with running(config(path), FakeBackend.with_plugins("newer")) as (new, _, _):
            old.close()
            with ControlClient(new.socket_path) as client:
                assert [p["name"] for p in client.list_plugins()] == ["newer"]


def test_a_new_policy_applies_to_the_next_request_of_an_open_connection(tmp_path: Path) -> None:
    """A connection keeps its verdicts per (method, path); a reload's policy must not be
    outlived by them (nor by the cached administrator roles of the reserved slots)."""
    with running(config(tmp_path / "c.sock")) as (server, _backend, _):
        with ControlClient(server.socket_path) as client:
            assert client.invoke("hello", b"a") == b"A"  # root is admin: allowed, cached
            server.set_policy(Policy(root_is_admin=False))
            with pytest.raises(ForbiddenError):
                client.invoke("hello", b"b")
        assert server.admission.policy is server.dispatcher.policy


def test_call_summaries_are_written_after_their_window_without_another_request(
    tmp_path: Path,
) -> None:
    """Invokes (inline on the loop thread or in the invoke lane) are counted, never written per
    call; once the window is over the server's sweep has the summary written in the control
    lane, though no request follows."""
    clock = ManualClock()
    with running(config(tmp_path / "c.sock"), clock=clock) as (server, _, sink):
        with ControlClient(server.socket_path) as client:
            for _ in range(PROBATION + 8):  # past probation: the last ones run inline
                client.invoke("hello", b"x")
        assert sink.named(EventName.PLUGIN_CALLS) == []  # nothing per call
        clock.advance(61.0)
        calls = poll_until(
            lambda: sink.named(EventName.PLUGIN_CALLS), BOUND, "the plugin.calls summary"
        )
    summary = [(e.plugin, e.reason, e.details["count"]) for e in calls]
    assert summary == [("hello", "ok", PROBATION + 8)]
    assert server.statistics().inline_calls > 0  # the inline path was counted too
