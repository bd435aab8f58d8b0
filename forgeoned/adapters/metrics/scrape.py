"""One connection of the ``/metrics`` server: one request (parsed by llhttp), one answer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

import httptools

if TYPE_CHECKING:
    from forgeoned.adapters.metrics.http import MetricsHTTPServer

MAX_HEAD: Final = 8192  # bytes a request may take before it is whole
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}


def answer(status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.0 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class Scrape(asyncio.Protocol):
    """One connection: one request, one answer, closed."""

    def __init__(self, server: MetricsHTTPServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.method = b""
        self.seen = 0  # bytes received before the request was whole
        self.complete = False
        self.answered = False
        self.deadline = server.clock.monotonic() + server.read_timeout_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.closed(self)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()

    def on_message_complete(self) -> None:
        self.complete = True

    def data_received(self, data: bytes) -> None:
        if self.complete or self.transport is None:
            return  # one request per connection: the rest is ignored
        self.seen += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.answer(answer(400, b"bad request\n"))
            return
        if self.complete:
            self.transport.pause_reading()
            self.deadline = self.server.clock.monotonic() + self.server.request_timeout_s
            self.server.requested(self)
        elif self.seen > MAX_HEAD:
            self.answer(answer(400, b"request too large\n"))

    def wants_metrics(self) -> bool:
        return self.url.split(b"?", 1)[0] == b"/metrics" and self.method == b"GET"

    def answer(self, data: bytes) -> None:
        transport = self.transport
        self.answered = True
        if transport is not None and not transport.is_closing():
            transport.write(data)
            transport.close()  # after the buffer is written
            self.deadline = self.server.clock.monotonic() + self.server.request_timeout_s
