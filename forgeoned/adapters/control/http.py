"""A lean HTTP/1.1 request parser and response writer for the control socket.

Only what the control API needs: a request line, headers, a ``Content-Length`` body (no
chunked uploads: curl and forgeonectl both send a length), keep-alive per RFC 9112 and
``Expect: 100-continue``. Every malformed or oversized request is a
:class:`HttpProtocolError` carrying the status to answer with before closing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from forgeoned.adapters.control.answers import error_fields
from forgeoned.errors import ForgeonedError, HttpProtocolError, RequestProblem

_REASONS: Final = {
    100: "Continue",
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE: Final = "Connection: close\r\n"
_METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The request line and headers (names lower-cased) of one request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    content_length: int
    keep_alive: bool
    expect_continue: bool


@dataclass(frozen=True, slots=True)
class Request:
    head: RequestHead
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or :class:`HttpProtocolError` 400 ``malformed_json``."""
        try:
            value = json.loads(self.body) if self.body else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpProtocolError(
                RequestProblem.MALFORMED_JSON, f"malformed JSON body: {exc}"
            ) from exc
        if not isinstance(value, dict):
            raise HttpProtocolError(RequestProblem.MALFORMED_JSON, "JSON body must be an object")
        return value


def parse_head(raw: bytes, max_body: int) -> RequestHead:
    """Parse everything before the blank line (``raw`` excludes the final CRLFCRLF)."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise HttpProtocolError(RequestProblem.BAD_REQUEST, "undecodable request head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] not in _METHODS or not parts[2].startswith("HTTP/1."):
        raise HttpProtocolError(RequestProblem.BAD_REQUEST, f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpProtocolError(RequestProblem.BAD_REQUEST, f"bad header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpProtocolError(RequestProblem.LENGTH_REQUIRED, "chunked bodies are not accepted")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpProtocolError(
            RequestProblem.BAD_REQUEST, f"bad Content-Length {length_text[:20]!r}"
        )
    length = int(length_text)
    if length > max_body:
        raise HttpProtocolError(
            RequestProblem.BODY_TOO_LARGE,
            f"request body of {length} bytes is over the {max_body} byte cap",
        )
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    if "?" in target:
        split = urlsplit(target)
        path, query = split.path, dict(parse_qsl(split.query, keep_blank_values=True))
    else:
        path, query = target, {}
    return RequestHead(
        method=method,
        path=unquote(path),
        query=query,
        headers=headers,
        content_length=length,
        keep_alive=keep_alive,
        expect_continue=headers.get("expect", "").lower() == "100-continue",
    )


def response(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    keep_alive: bool = True,
) -> bytes:
    """One whole response, ready to write."""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{'' if keep_alive else _CLOSE}\r\n"
    )
    return head.encode("latin-1") + body


def stream_head(status: int, content_type: str, *, keep_alive: bool = True) -> bytes:
    """The head of a response whose body follows in chunks (``Transfer-Encoding: chunked``)."""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n"
        f"{'' if keep_alive else _CLOSE}\r\n"
    )
    return head.encode("latin-1")


def json_response(status: int, value: Any, *, keep_alive: bool = True) -> bytes:
    body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    return response(status, body, keep_alive=keep_alive)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: ForgeonedError, *, keep_alive: bool = True, **extra: Any) -> bytes:
    """The JSON error answer for ``exc``: its stable code and one-line message (with the
    notes the daemon added on the way, e.g. what an install's refusal undid)."""
    status = exc.status if isinstance(exc, HttpProtocolError) else exc.http_status
    message = str(exc).splitlines()[0] if str(exc) else exc.code
    if notes := getattr(exc, "__notes__", None):
        message = f"{message} ({'; '.join(str(n) for n in notes)})"
    body = error_body(exc.code, message, **error_fields(exc), **extra)
    return json_response(status, body, keep_alive=keep_alive)
