"""The control server's request framing (llhttp underneath) and its response writer."""

from __future__ import annotations

import json

import pytest

from forgeoned.adapters.control.http import (
    MAX_JSON_DEPTH,
    Request,
    error_response,
    json_depth,
    json_response,
    response,
)
from forgeoned.adapters.control.parser import RequestReader, parse_request
from forgeoned.errors import HttpProtocolError, NotFoundError

CAP = 1000


def test_simple_get() -> None:
    request = parse_request(b"GET /v1/plugins?since=5&x=%20y HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = request.head
    assert (head.method, head.path) == ("GET", "/v1/plugins")
    assert head.query == {"since": "5", "x": " y"}
    assert head.headers == {"host": "localhost"}
    assert head.content_length == 0 and request.body == b""
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
    raw = f"GET / {version}\r\n" + (f"{connection}\r\n" if connection else "") + "\r\n"
    assert parse_request(raw.encode()).head.keep_alive is keep


def test_body_length_and_expect_continue() -> None:
    request = parse_request(
        b"POST /v1/plugins HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        + b"0123456789"
    )
    assert request.head.content_length == 10 and request.head.expect_continue
    assert request.body == b"0123456789"


def test_requests_are_taken_one_at_a_time_and_pipelined_bytes_stay_buffered() -> None:
    reader = RequestReader(CAP)
    buffer = bytearray(
        b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\n\r\n"
        b"POST /c HTTP/1.1\r\nContent-Le"
    )
    first = reader.read_head(buffer)
    assert first is not None and first.path == "/a"
    assert buffer.startswith(b"abcGET /b")  # the body is not taken until asked for
    assert reader.read_body(buffer, first.content_length) == b"abc"
    second = reader.read_head(buffer)
    assert second is not None and second.path == "/b" and second.content_length == 0
    assert reader.read_body(buffer, 0) == b""
    assert reader.read_head(buffer) is None  # the third is not all there yet
    buffer += b"ngth: 1\r\n\r\nz"
    third = reader.read_head(buffer)
    assert third is not None and third.path == "/c"
    assert reader.read_body(buffer, 1) == b"z" and buffer == b""


def test_empty_lines_before_a_request_are_ignored() -> None:
    assert parse_request(b"\r\n\r\nGET /x HTTP/1.1\r\n\r\n").head.path == "/x"


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GARBAGE", 400, "bad_request"),
        (b"GET /x HTTP/2", 400, "bad_request"),
        (b"GET /x HTTP/2.0", 400, "bad_request"),
        (b"GET /x", 400, "bad_request"),  # HTTP/0.9
        (b"FLY /x HTTP/1.1", 400, "bad_request"),
        (b"PROPFIND /x HTTP/1.1", 400, "bad_request"),
        (b"GET /x HTTP/1.1\r\nno colon here", 400, "bad_request"),
        (b"GET /x HTTP/1.1\r\n Host: folded", 400, "bad_request"),
        (b"GET /x HTTP/1.1\r\nHost: a\r\n folded", 400, "bad_request"),
        (b"GET /x HTTP/1.1\r\nX: a\x00b", 400, "bad_request"),
        (b"POST /x HTTP/1.1\r\nContent-Length: -5", 400, "bad_request"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 5, 5", 400, "bad_request"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999", 400, "bad_request"),
        # issue 10: passes str.isdigit(), then int() raised on the loop thread
        (b"POST /x HTTP/1.1\r\nContent-Length: \xb2", 400, "bad_request"),
        # issue 10: two lengths (RFC 9112 6.3: reject; the last one silently won)
        (b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 0", 400, "bad_request"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5", 400, "bad_request"),
        (
            b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked",
            400,
            "bad_request",
        ),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked", 411, "length_required"),
        (b"GET /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade", 400, "bad_request"),
        (b"CONNECT a:1 HTTP/1.1", 400, "bad_request"),
        (b"GET /x HTTP/1.1\r\nX-Junk: " + b"a" * CAP, 431, "headers_too_large"),
    ],
)
def test_bad_heads(raw: bytes, status: int, code: str) -> None:
    with pytest.raises(HttpProtocolError) as info:
        RequestReader(CAP).read_head(bytearray(raw + b"\r\n\r\n"))
    assert info.value.status == status
    assert info.value.code == code
    assert "\n" not in str(info.value)


def test_an_unfinished_head_over_the_cap_is_refused_without_waiting_for_its_end() -> None:
    with pytest.raises(HttpProtocolError) as info:
        RequestReader(CAP).read_head(bytearray(b"GET /x HTTP/1.1\r\nX: " + b"a" * CAP))
    assert info.value.status == 431


def test_malformed_json_body() -> None:
    head = parse_request(b"POST /x HTTP/1.1\r\n\r\n").head
    with pytest.raises(HttpProtocolError) as info:
        Request(head, b"{bad").json()
    assert (info.value.status, info.value.code) == (400, "malformed_json")
    with pytest.raises(HttpProtocolError, match="must be an object"):
        Request(head, b"[1]").json()
    assert Request(head, b'{"version": "1.0.0"}').json() == {"version": "1.0.0"}
    assert Request(head, b"").json() == {}


def test_deeply_nested_json_is_a_400_not_a_recursion_error() -> None:
    head = parse_request(b"POST /x HTTP/1.1\r\n\r\n").head
    for nested in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        with pytest.raises(HttpProtocolError) as info:
            Request(head, nested).json()
        assert (info.value.status, info.value.code) == (400, "malformed_json")
        assert "nested" in str(info.value)
    ok = b'{"a":' * (MAX_JSON_DEPTH - 1) + b"[1]" + b"}" * (MAX_JSON_DEPTH - 1)
    assert isinstance(Request(head, ok).json(), dict)


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"version": "[[[{{{"}') == 1
    assert json_depth(b'{"a": "\\"[[[", "b": [[]]}') == 3
    assert json_depth(b"") == 0
    assert json_depth(b'{"a": "x\\\\", "b": [[]]}') == 3  # an escaped backslash ends no string
    assert json_depth(b'[[{"a": "[[[') == 3  # unterminated: json.loads stops there too


# Each took time quadratic in its length with the old string pattern (4 MiB: hours); the
# timeout only guards against a hang.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("unit", [b'"\\', b'"\\\n', b'"\\"', b'["\\'])
def test_json_depth_is_linear_on_escape_heavy_bodies(unit: bytes) -> None:
    body = unit * ((4 << 20) // len(unit))
    assert json_depth(body) <= 1


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
