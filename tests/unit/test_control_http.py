"""The lean HTTP/1.1 parser and writer of the control server."""

from __future__ import annotations

import json

import pytest

from forgeoned.adapters.control.http import (
    Request,
    error_response,
    json_response,
    parse_head,
    response,
)
from forgeoned.errors import HttpProtocolError, NotFoundError

CAP = 1000


def test_simple_get() -> None:
    head = parse_head(b"GET /v1/plugins?since=5&x=%20y HTTP/1.1\r\nHost: localhost", CAP)
    assert (head.method, head.path) == ("GET", "/v1/plugins")
    assert head.query == {"since": "5", "x": " y"}
    assert head.headers == {"host": "localhost"}
    assert head.content_length == 0
    assert head.keep_alive and not head.expect_continue


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        ("HTTP/1.1", "", True),
        ("HTTP/1.1", "Connection: close", False),
        ("HTTP/1.0", "", False),
        ("HTTP/1.0", "Connection: keep-alive", True),
    ],
)
def test_keep_alive_rules(version: str, connection: str, keep: bool) -> None:
    raw = f"GET / {version}" + (f"\r\n{connection}" if connection else "")
    assert parse_head(raw.encode(), CAP).keep_alive is keep


def test_body_length_and_expect_continue() -> None:
    head = parse_head(
        b"POST /v1/plugins HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue", CAP
    )
    assert head.content_length == 10 and head.expect_continue


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GARBAGE", 400, "bad_request"),
        (b"GET /x HTTP/2", 400, "bad_request"),
        (b"FLY /x HTTP/1.1", 400, "bad_request"),
        (b"GET /x HTTP/1.1\r\nno colon here", 400, "bad_request"),
        (b"GET /x HTTP/1.1\r\n Host: folded", 400, "bad_request"),
        (b"POST /x HTTP/1.1\r\nContent-Length: -5", 400, "bad_request"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 1001", 413, "body_too_large"),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked", 411, "length_required"),
    ],
)
def test_bad_heads(raw: bytes, status: int, code: str) -> None:
    with pytest.raises(HttpProtocolError) as info:
        parse_head(raw, CAP)
    assert info.value.status == status
    assert info.value.code == code
    assert "\n" not in str(info.value)


def test_malformed_json_body() -> None:
    head = parse_head(b"POST /x HTTP/1.1\r\nContent-Length: 4", CAP)
    with pytest.raises(HttpProtocolError) as info:
        Request(head, b"{bad").json()
    assert (info.value.status, info.value.code) == (400, "malformed_json")
    with pytest.raises(HttpProtocolError, match="must be an object"):
        Request(head, b"[1]").json()
    assert Request(head, b'{"version": "1.0.0"}').json() == {"version": "1.0.0"}
    assert Request(head, b"").json() == {}


def test_response_framing() -> None:
    raw = response(200, b"abc", content_type="application/octet-stream")
    assert raw == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nabc"
    )
    closing = json_response(201, {"a": 1}, keep_alive=False)
    head, body = closing.split(b"\r\n\r\n", 1)
    assert b"Connection: close" in head and head.startswith(b"HTTP/1.1 201 Created")
    assert json.loads(body) == {"a": 1}


def test_error_response_uses_status_code_and_first_line() -> None:
    raw = error_response(NotFoundError("no plugin named 'x'\nsecond line"), rule="r")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 404 Not Found")
    assert json.loads(body) == {
        "error": {"code": "not_found", "message": "no plugin named 'x'", "rule": "r"}
    }
