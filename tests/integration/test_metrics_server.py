"""The ``/metrics`` server serves connections concurrently (issue 12: six idle connections
made a Prometheus scrape time out): idle or slow connections hold only themselves, are closed
at their read deadline, and give way to new connections when the server is full. Deadlines
and the rate limit run on a manual clock here: nothing times out unless the test says so."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from forgeoned.adapters.metrics.model import StaticSource
from forgeoned.adapters.metrics.server import MetricsServer
from forgeoned.core.clock import ManualClock
from forgeoned.core.stats import PluginStats, PluginView

BOUND = 10.0
SOURCE = StaticSource([PluginView("hello", "1.0.0", "ab" * 32, "running", 65536, PluginStats())])


@contextmanager
def serving(clock: ManualClock, **options: Any) -> Iterator[MetricsServer]:
    server = MetricsServer("127.0.0.1:0", SOURCE, clock=clock, sweep_interval_s=0.01, **options)
    server.start()
    try:
        yield server
    finally:
        server.close()


def scrape(server: MetricsServer) -> int:
    url = f"http://127.0.0.1:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=BOUND) as response:
        assert b'forgeone_plugin_up{plugin="hello"} 1' in response.read()
        status: int = response.status
        return status


def idle(server: MetricsServer, n: int, partial: bytes = b"") -> list[socket.socket]:
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=BOUND) for _ in range(n)]
    for sock in socks:
        if partial:
            sock.sendall(partial)
    return socks


def test_fifty_idle_connections_do_not_delay_a_scrape() -> None:
    """The idle connections' read deadlines are on a clock that never moves: a server that
    served them one at a time would never get to the scrape (it would time out after BOUND)."""
    with serving(ManualClock(), min_interval_s=0.0, max_scrapes_per_s=1000.0) as server:
        socks = idle(server, 25) + idle(server, 25, b"GET /metrics HTTP/1.1\r\nHost: x")
        try:
            assert server.http.wait_connections(50, BOUND)
            assert scrape(server) == 200
            assert server.http.wait_connections(50, BOUND)  # the scrape's own has gone
            # nothing was closed to make room: the clock never moved, so no deadline passed
            stats = server.statistics()
            assert (stats.connections, stats.timed_out, stats.evicted) == (50, 0, 0)
        finally:
            for sock in socks:
                sock.close()


def test_idle_and_slow_connections_are_closed_at_their_read_deadline() -> None:
    clock = ManualClock()
    with serving(clock) as server:
        socks = idle(server, 3) + idle(server, 3, b"GET /met")
        try:
            assert server.http.wait_connections(6, BOUND)
            clock.advance(1.9)  # the read timeout is 2 s
            assert server.statistics().timed_out == 0
            clock.advance(0.2)
            assert server.http.wait_connections(0, BOUND)
            assert server.statistics().timed_out == 6
            assert all(sock.recv(1) == b"" for sock in socks)  # closed, nothing said
        finally:
            for sock in socks:
                sock.close()


def test_a_full_server_evicts_the_oldest_connection_without_a_request() -> None:
    with serving(ManualClock(), max_scrapes_per_s=1000.0, max_connections=8) as server:
        socks = idle(server, 8)
        try:
            assert server.http.wait_connections(8, BOUND)
            assert scrape(server) == 200
            assert socks[0].recv(1) == b""  # the oldest idle one gave way
            assert server.statistics().evicted == 1
        finally:
            for sock in socks:
                sock.close()


def test_scrapes_over_the_rate_wait_their_turn_then_get_503() -> None:
    clock = ManualClock()
    with serving(clock, max_scrapes_per_s=0.01, min_interval_s=0.0) as server:
        assert scrape(server) == 200  # the one token of the burst
        late = idle(server, 1, b"GET /metrics HTTP/1.0\r\n\r\n")[0]
        try:
            assert server.http.wait_until(lambda s: s.waiting == 1, BOUND)
            clock.advance(5.1)  # request_timeout_s: still no token (0.05 of one refilled)
            assert late.recv(64).startswith(b"HTTP/1.0 503 Service Unavailable")
            assert server.statistics().served == 1
        finally:
            late.close()
