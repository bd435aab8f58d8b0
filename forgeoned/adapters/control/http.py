"""The control API's HTTP values: a parsed request, the response writer, the JSON errors.

Requests are parsed by :mod:`forgeoned.adapters.control.parser` (llhttp). Every malformed or
oversized request is a :class:`HttpProtocolError` carrying the status to answer with before
closing. JSON bodies are held to :data:`MAX_JSON_DEPTH` levels of nesting (the body size is
capped per action before it is read), so a deeply nested body is a 400, not a
``RecursionError`` in the decoder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

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
MAX_JSON_DEPTH: Final = 32  # the API's bodies are flat objects; this is generous
# Each pattern below matches without backtracking, so every pass is linear in the body: an
# escape pair first (a backslash and the byte after it), then a string with no escapes left
# in it, to its closing quote or, unterminated, to the end. (A string pattern that handled
# escapes itself was quadratic on a body of ``"\`` repeated: 64 KiB held the GIL ~30 s.)
_ESCAPE: Final = re.compile(rb"\\.", re.DOTALL)
_STRING: Final = re.compile(rb'"[^"]*(?:"|\Z)')
_NOT_BRACKET: Final = re.compile(rb"[^\[\]{}]+")


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
        depth = json_depth(self.body)
        if depth > MAX_JSON_DEPTH:
            raise HttpProtocolError(
                RequestProblem.MALFORMED_JSON,
                f"JSON body nested {depth} deep (at most {MAX_JSON_DEPTH})",
            )
        try:
            value = json.loads(self.body) if self.body else {}
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise HttpProtocolError(
                RequestProblem.MALFORMED_JSON, f"malformed JSON body: {exc}"
            ) from exc
        if not isinstance(value, dict):
            raise HttpProtocolError(RequestProblem.MALFORMED_JSON, "JSON body must be an object")
        return value


def json_depth(text: bytes) -> int:
    """How deeply ``[`` and ``{`` nest in ``text`` outside string literals (for malformed
    text, at least as deep as ``json.loads`` gets before it fails: it stops at an unterminated
    string). Linear in ``len(text)`` whatever the bytes, and never recurses."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", _ESCAPE.sub(b"", text)))
    depth = deepest = 0
    for char in brackets:
        if char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


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
