"""A small ``/metrics`` HTTP endpoint that a scrape flood cannot turn against the daemon.

One thread serves requests one at a time (no thread per connection), each connection has a
socket timeout, and the rendered page is reused for ``min_interval_s``: however many scrapes
arrive, the metrics are collected at most once per interval, so the rest of the daemon keeps
the GIL for its own work.
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

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)


class MetricsHTTPServer:
    """Serves what ``render`` returns on ``listen`` from one background thread."""

    def __init__(
        self,
        listen: str,
        render: Callable[[], bytes],
        *,
        min_interval_s: float = 1.0,
        request_timeout_s: float = 5.0,
    ) -> None:
        self._render = render
        self._min_interval = min_interval_s
        self._cached: tuple[float, bytes] | None = None
        self.renders = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout_s
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self._reply(404, b"only /metrics here\n", "text/plain; charset=utf-8")
                    return
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
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            daemon=True,
            name="forgeoned-metrics",
        )

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

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the socket; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
