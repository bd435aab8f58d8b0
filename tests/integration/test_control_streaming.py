"""Streamed answers over the real control server: chunked, complete, and bounded for a reader
that stops reading (it is dropped after the idle timeout; the daemon never buffers for it)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from control_harness import FakeBackend, config, running

from forgeoned.adapters.control.client import ControlClient

BOUND = 30.0


class EndlessLog(FakeBackend):
    """An audit log that never ends; counts what the server asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.produced = 0
        self.closed = threading.Event()

    def audit_entries(self, since: float | None) -> Iterator[dict[str, Any]]:
        try:
            while True:
                self.produced += 1
                yield {"seq": self.produced, "ts": "2026-01-01T00:00:00Z",
                       "event": "hostcall.denied", "message": "x" * 200}  # fmt: skip
        finally:
            self.closed.set()


def test_a_long_answer_arrives_whole_in_chunks(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.audit_log = [
        {"seq": i, "ts": "2026-01-01T00:00:00Z", "event": "daemon.started", "hash": f"h{i}"}
        for i in range(1, 5001)
    ]
    with running(config(tmp_path / "c.sock"), backend) as (server, _, _):
        with ControlClient(server.socket_path) as client:
            seqs = [json.loads(line)["seq"] for line in client.audit_lines("ndjson")]
            assert seqs == list(range(1, 5001))
            whole = client.request("GET", "/v1/audit")  # the JSON object form, streamed too
            assert [e["seq"] for e in whole["entries"]] == seqs
            assert client.whoami()["uid"] >= 0  # the keep-alive connection goes on


def test_a_reader_that_stops_reading_is_dropped_and_costs_a_bounded_amount(
    tmp_path: Path,
) -> None:
    backend = EndlessLog()
    cfg = config(tmp_path / "c.sock", idle_timeout_s=0.5)
    with running(cfg, backend) as (server, _, _):
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        peer.connect(server.socket_path)
        peer.sendall(b"GET /v1/audit?format=ndjson HTTP/1.1\r\nHost: x\r\n\r\n")
        # never read: the server fills the socket and its write buffer, then waits
        assert backend.closed.wait(BOUND), "the stream was never given up"
        assert server.wait_connections(0, BOUND)
        produced_bytes = backend.produced * 260
        print(f"produced {backend.produced} entries ({produced_bytes >> 10} KiB) before the drop")
        assert produced_bytes < 4 << 20, backend.produced  # socket + transport buffers
        peer.close()
        with ControlClient(server.socket_path) as client:  # the worker is free again
            assert client.whoami()["uid"] >= 0
