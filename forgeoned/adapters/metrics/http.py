"""A small ``/metrics`` HTTP endpoint that a scrape flood cannot turn against the daemon.

The work it does per second is bounded by construction: one thread accepts and serves one
connection at a time, and accepts at most ``max_scrapes_per_s`` connections per second
(a token bucket paces the accept loop; further connections wait in the kernel's listen
backlog, where they cost the daemon nothing). Each connection has a socket timeout, and the
rendered page is reused for ``min_interval_s``, so the metrics are collected at most once
per interval however many scrapes arrive. Prometheus scrapes every 15-60 s; even several
servers stay far below the limit.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from forgeoned.errors import ConfigError


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (localhost) -> (host, port); ConfigError if bad."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"metrics.listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


class _Server(HTTPServer):
    allow_reuse_address = True
    timeout = 0.2  # handle_request() returns this often when idle, to notice close()

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.connections = 0
        self.errors = 0
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1  # every accepted connection spends a token, whatever it asks
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper that hung up mid-page (BrokenPipe, reset, timeout) is its own business:
        # counted, never a traceback on the daemon's stderr.
        self.errors += 1


class MetricsHTTPServer:
    """Serves what ``render`` returns on ``listen`` from one background thread."""

    def __init__(
        self,
        listen: str,
        render: Callable[[], bytes],
        *,
        min_interval_s: float = 1.0,
        request_timeout_s: float = 5.0,
        max_scrapes_per_s: float = 10.0,
    ) -> None:
        self._render = render
        self._min_interval = min_interval_s
        self._cached: tuple[float, bytes] | None = None
        self._rate = max_scrapes_per_s
        self._burst = max(1.0, max_scrapes_per_s)
        self._tokens = self._burst
        self._refilled = time.monotonic()
        self._stop = threading.Event()
        self.renders = 0
        self.served = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout_s
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self._reply(404, b"only /metrics here\n", "text/plain; charset=utf-8")
                    return
                outer.served += 1
                self._reply(200, outer.render(), CONTENT_TYPE_LATEST)

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        host, port = parse_listen(listen)
        try:
            self._server = _Server((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
        self._thread = threading.Thread(target=self._serve, daemon=True, name="forgeoned-metrics")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def render(self) -> bytes:
        """The exposition text, collected at most once per ``min_interval_s``."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self._min_interval:
            return self._cached[1]
        body = self._render()
        self.renders += 1
        self._cached = (now, body)
        return body

    def _wait_for_token(self) -> bool:
        """Block until a connection may be accepted; False when closing."""
        while not self._stop.is_set():
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1.0:
                return True
            self._stop.wait((1.0 - self._tokens) / self._rate)
        return False

    def _serve(self) -> None:
        while self._wait_for_token():
            before = self._server.connections
            self._server.handle_request()  # one connection, or returns after the idle timeout
            self._tokens -= self._server.connections - before

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the socket; idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._server.server_close()
