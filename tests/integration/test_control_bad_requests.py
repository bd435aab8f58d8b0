"""Requests the old hand-written parser got wrong (issue 10), and bodies the API must refuse
before reading them (issue 12), against a real ControlServer: each is answered with its error,
the connection closes cleanly, nothing reaches the backend, the server goes on serving, and
asyncio logs no failure."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from control_harness import FakeBackend, ListSink, config, running

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.control.server import ControlServer
from forgeoned.core.events import EventName
from forgeoned.core.stats import DaemonStats

BOUND = 10.0


def answer_and_close(path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``; read the whole answer up to the server's close (EOF)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(BOUND)
        sock.connect(path)
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):  # EOF: the server closed its side
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    assert int(headers["content-length"]) == len(body)  # exactly one answer, nothing after
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    "raw",
    [
        # passes str.isdigit(), then int() raised inside data_received: asyncio logged
        # "Fatal error: protocol.data_received() call failed" and the client got no answer
        b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nx",
        # two lengths, 5 then 0: the last silently won (request smuggling, RFC 9112 6.3)
        b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: 5\r\n"
        b"Content-Length: 0\r\n\r\nGET /v1/plugins/hello HTTP/1.1\r\n\r\n",
        b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: -5\r\n\r\nx",
        b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: five\r\n\r\nx",
        b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx",
    ],
    ids=["superscript-two-length", "two-lengths", "negative", "not-a-number", "a-list"],
)
def test_bad_content_length_is_400_and_a_clean_close(
    tmp_path: Path, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING),
        running(config(tmp_path / "c.sock")) as (server, backend, sink),
    ):
        status, headers, body = answer_and_close(server.socket_path, raw)
        assert status == 400 and headers["connection"] == "close"
        error = json.loads(body)["error"]
        assert error["code"] == "bad_request" and "Content-Length" in error["message"]
        assert "\n" not in error["message"]
        assert server.wait_connections(0, BOUND)
        assert server.statistics().bad_requests == 1  # counted (forgeone_control_requests)
        with ControlClient(server.socket_path) as client:  # still serving
            assert client.invoke("hello", b"ok") == b"OK"
        assert backend.calls == [] and sink.events == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_over_the_invoke_cap_is_413_on_the_head(tmp_path: Path) -> None:
    cfg = config(tmp_path / "c.sock", max_invoke_bytes=1000, max_body_bytes=10_000)
    with running(cfg) as (server, backend, _):
        head = b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"
        status, _, body = answer_and_close(server.socket_path, head)  # no body sent
        assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
        assert "1000 byte cap" in json.loads(body)["error"]["message"]
        with ControlClient(server.socket_path) as client:
            assert client.invoke("hello", b"y" * 1000) == b"Y" * 1000  # at the cap: fine
            assert client.install(b"\0asm-signed" + b"n" * 2000, "n.wasm")["installed"]
        assert backend.written.keys() == {"n.wasm"}


def test_control_actions_take_small_bodies_only(tmp_path: Path) -> None:
    with running(config(tmp_path / "c.sock", max_json_bytes=4096)) as (server, backend, sink):
        raw = b"POST /v1/plugins/hello/allow-downgrade HTTP/1.1\r\nContent-Length: 4097\r\n\r\n"
        status, _, body = answer_and_close(server.socket_path, raw)
        assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
        assert backend.calls == [] and sink.named(EventName.CONTROL_ACTION) == []


def test_deeply_nested_json_is_400_not_500(tmp_path: Path) -> None:
    """It was ``500 RecursionError``. 30,000 levels fit in the 64 KiB cap of a JSON body."""
    with running(config(tmp_path / "c.sock")) as (server, backend, sink):
        nested = b"[" * 30_000 + b"]" * 30_000
        raw = (
            b"POST /v1/plugins/hello/allow-downgrade HTTP/1.1\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(nested)).encode() + b"\r\n\r\n" + nested
        )
        status, _, body = answer_and_close(server.socket_path, raw)
        error = json.loads(body)["error"]
        assert status == 400 and error["code"] == "malformed_json"
        assert error["message"] == "JSON body nested 30000 deep (at most 32)"
        assert backend.calls == []
        (event,) = sink.named(EventName.CONTROL_ACTION)  # audited as a failed admin action
        assert event.reason == "malformed_json"


def test_requests_refused_before_routing_are_counted_as_unrouted(tmp_path: Path) -> None:
    cfg = config(tmp_path / "c.sock")
    stats = DaemonStats()
    with ControlServer(cfg, FakeBackend.with_plugins("hello"), ListSink(), cfg.policy, stats) as s:
        raw = b"POST /v1/plugins/hello/invoke HTTP/1.1\r\nContent-Length: -1\r\n\r\n"
        assert answer_and_close(s.socket_path, raw)[0] == 400
        not_found = b"GET /v2 HTTP/1.1\r\nConnection: close\r\n\r\n"
        assert answer_and_close(s.socket_path, not_found)[0] == 404
    assert stats.control_requests == {("unrouted", "bad_request"): 1, ("unrouted", "not_found"): 1}
