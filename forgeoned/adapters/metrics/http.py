"""A small ``/metrics`` HTTP endpoint that neither a scrape flood nor idle connections can
turn against the daemon or against Prometheus.

Connections are served concurrently by one asyncio loop in its own thread (llhttp parses each
request), so an idle or slow connection only ever holds itself: it has ``read_timeout_s`` to
send its whole request, then it is closed; and when ``max_connections`` are open, a new
connection evicts the oldest one that has not sent a whole request yet (a scraper sends its
request as soon as it connects; a connection that sends nothing is the one to go). The old
server handled one connection at a time, so six idle connections made a scrape time out.

The work it does per second stays bounded: it answers at most ``max_scrapes_per_s`` requests
per second (a token bucket; requests over the rate wait their turn in arrival order, each at
most ``request_timeout_s`` from its first byte, then 503), and the rendered page is reused for
``min_interval_s``, so the metrics are collected at most once per interval however many
scrapes arrive. Every answer closes its connection (HTTP/1.0 style, as before). Time comes
from the injected clock: one sweep every ``sweep_interval_s`` refills the bucket, answers the
requests that waited for it and closes the connections past their deadline.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST

from forgeoned.adapters.metrics.scrape import Scrape, answer
from forgeoned.adapters.serving import stop_serving
from forgeoned.core.clock import SystemClock
from forgeoned.core.ports import Clock
from forgeoned.errors import ConfigError, StateError

_START_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class MetricsServerStats:
    renders: int  # times the metrics were collected
    served: int  # 200 answers to GET /metrics
    connections: int  # open now
    waiting: int  # requests waiting for their turn (the rate limit)
    evicted: int  # idle connections closed to make room for a new one
    timed_out: int  # connections closed at their deadline (or answered 503 after waiting)


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (localhost) -> (host, port); ConfigError if bad."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"metrics.listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


class MetricsHTTPServer:
    """Serves what ``render`` returns on ``listen`` from one background thread."""

    def __init__(
        self,
        listen: str,
        render: Callable[[], bytes],
        *,
        min_interval_s: float = 1.0,
        request_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
        max_scrapes_per_s: float = 10.0,
        max_connections: int = 64,
        clock: Clock | None = None,
        sweep_interval_s: float = 0.1,
    ) -> None:
        self._render = render
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._min_interval = min_interval_s
        self.request_timeout_s = request_timeout_s
        self.read_timeout_s = read_timeout_s
        self._cached: tuple[float, bytes] | None = None
        self._rate = max_scrapes_per_s
        self._burst = max(1.0, max_scrapes_per_s)
        self._tokens = self._burst
        self._refilled = self.clock.monotonic()
        self._max_connections = max_connections
        self._sweep_s = sweep_interval_s
        self._open: dict[Scrape, None] = {}  # in arrival order (for eviction)
        self._waiting: collections.deque[Scrape] = collections.deque()
        self._changed = threading.Condition()
        self.renders = 0
        self.served = 0
        self.evicted = 0
        self.timed_out = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(128)
            self._sock.setblocking(False)
        except OSError as exc:
            self._sock.close()
            raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def _transports(self) -> list[asyncio.Transport]:
        return [s.transport for s in list(self._open) if s.transport is not None]

    def statistics(self) -> MetricsServerStats:
        """A consistent snapshot (``renders`` and ``served`` move together)."""
        with self._changed:
            queued = list(self._waiting)  # one C call: atomic under the GIL
            waiting = sum(1 for s in queued if not s.answered and s.transport is not None)
            return MetricsServerStats(
                self.renders, self.served, len(self._open), waiting, self.evicted, self.timed_out
            )

    def render(self) -> bytes:
        """The exposition text, collected at most once per ``min_interval_s``."""
        now = self.clock.monotonic()
        if self._cached is not None and now - self._cached[0] < self._min_interval:
            return self._cached[1]
        body = self._render()
        self.renders += 1
        self._cached = (now, body)
        return body

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        ready: Future[None] = Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                server = loop.run_until_complete(
                    loop.create_server(lambda: Scrape(self), sock=self._sock)
                )
            except BaseException as exc:
                ready.set_exception(exc)
                return
            loop.call_later(self._sweep_s, self._sweep)
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(stop_serving(server, self._transports))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, daemon=True, name="forgeoned-metrics")
        self._thread.start()
        try:
            ready.result(timeout=_START_TIMEOUT_S)
        except Exception as exc:
            raise StateError(f"metrics server did not start: {exc}") from exc

    def close(self) -> None:
        """Stop serving and release the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT_S)
        self._sock.close()

    def wait_connections(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` connections are open; False on timeout."""
        return self.wait_until(lambda s: s.connections == count, timeout)

    def wait_until(self, predicate: Callable[[MetricsServerStats], bool], timeout: float) -> bool:
        """Wait until ``predicate(self.statistics())`` holds (checked whenever a connection
        comes or goes, a request arrives, and after every sweep); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.statistics()), timeout)

    # --- the loop thread ----------------------------------------------------------------------

    def opened(self, scrape: Scrape) -> None:
        if len(self._open) >= self._max_connections:
            oldest = next((s for s in self._open if not s.complete), None)
            if oldest is None or oldest.transport is None:
                assert scrape.transport is not None
                scrape.transport.abort()  # every slot has a request waiting: come back later
                return
            self.evicted += 1
            oldest.transport.abort()
        with self._changed:
            self._open[scrape] = None
            self._changed.notify_all()

    def closed(self, scrape: Scrape) -> None:
        with self._changed:
            self._open.pop(scrape, None)
            self._changed.notify_all()

    def requested(self, scrape: Scrape) -> None:
        if not scrape.wants_metrics():
            scrape.answer(answer(404, b"only /metrics here\n"))
            return
        self._waiting.append(scrape)
        self._serve_waiting()
        with self._changed:
            self._changed.notify_all()

    def _serve_waiting(self) -> None:
        now = self.clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        waiting = self._waiting
        while waiting and self._tokens >= 1.0:
            scrape = waiting.popleft()
            if scrape.transport is None or scrape.answered:
                continue  # gone, or timed out, while it waited
            self._tokens -= 1.0
            with self._changed:  # renders and served move together for statistics()
                page = self.render()
                self.served += 1
            scrape.answer(answer(200, page, CONTENT_TYPE_LATEST))

    def _sweep(self) -> None:
        self._serve_waiting()
        now = self.clock.monotonic()
        for scrape in [s for s in self._open if s.deadline <= now]:
            if scrape.transport is None:
                continue
            self.timed_out += 1
            if scrape.complete and not scrape.answered:  # waited its turn too long
                scrape.answer(answer(503, b"too many scrapes, try again\n"))
            else:  # idle, slow, or not reading its answer
                scrape.transport.abort()
        with self._changed:
            self._changed.notify_all()
        assert self._loop is not None
        self._loop.call_later(self._sweep_s, self._sweep)
