"""Issue 12's attacks on the control API, each replayed against a real ControlServer while an
administrator (root here) asks for ``status``: it must be answered while the attack is still
on. Each attack is held open by the test until it ends (idle connections that would last
60 s, a gate that never opens), so an admin's request that had to wait the attack out would
not be answered within the client's bound; no wall-clock threshold is needed to tell the two
apart.

- 256 idle connections from a user holding no role (the old server: "too many connections");
- 8 held uploads of 60 MB from a user holding no role (the old server buffered them before
  authorising: 590 MiB RSS);
- 16 invoke clients on a plugin whose calls do not return (the old server: the admin's
  ``status`` took 10 s behind them in the one shared pool);
- a flood of deeply nested JSON bodies (the old server: ``500 RecursionError``), and of
  bodies full of escapes (the depth check's first version: quadratic, GIL held).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from control_harness import FakeBackend, ManualClock, config, running
from nobody_kit import HELD, as_nobody, connect, shared_tmp, status_of

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.control.server import ControlServer
from forgeoned.core.events import EventName

BOUND = 10.0  # every wait's bound; well under the 60 s idle timeout the attacks rely on


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    with shared_tmp() as path:
        yield path


def admin_status_answers(server: ControlServer) -> None:
    with ControlClient(server.socket_path, timeout=BOUND) as client:
        assert [p["name"] for p in client.list_plugins()]


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.parametrize("per_uid", [64, 256], ids=["per-uid-cap", "admin-reserved-slots"])
def test_idle_connections_of_a_user_without_a_role(shared_dir: Path, per_uid: int) -> None:
    cfg = config(shared_dir / "c.sock", mode="0666", max_connections_per_uid=per_uid)
    admitted = min(per_uid, cfg.max_connections - cfg.admin_reserved_connections)

    def attack() -> int:
        HELD.extend(connect(str(shared_dir / "c.sock")) for _ in range(256))
        return len(HELD)  # all kept open until the test ends

    with running(cfg) as (server, _backend, _sink), as_nobody(attack) as opened:
        assert opened == 256
        assert server.wait_until(
            lambda s: s.connections_total == 256 and s.connections_open == admitted, BOUND
        ), server.statistics()
        assert server.statistics().connections_refused == 256 - admitted
        admin_status_answers(server)


def test_held_uploads_of_a_user_without_a_role_are_refused_on_the_head(shared_dir: Path) -> None:
    cfg = config(shared_dir / "c.sock", mode="0666")
    path = str(shared_dir / "c.sock")

    def attack() -> list[int]:
        socks, statuses = HELD, []
        for _ in range(8):
            sock = connect(path)
            sock.sendall(b"POST /v1/plugins?filename=big.wasm HTTP/1.1\r\n")
            sock.sendall(b"Content-Length: 60000000\r\n\r\n")
            statuses.append(status_of(sock))  # answered before one byte of the body is sent
            socks.append(sock)
        for sock in socks:  # then 8 MiB of body each, discarded as it arrives
            for _ in range(8):
                sock.sendall(b"\0" * (1 << 20))
        return statuses

    with running(cfg) as (server, backend, sink):
        before = _rss()
        with as_nobody(attack) as statuses:
            assert statuses == [403] * 8
            stats = server.statistics()
            assert stats.buffered_bytes == 0 and stats.connections_open == 8
            assert _rss() - before < 16 << 20  # 64 MiB were sent; none of it is held
            admin_status_answers(server)
        assert [e.details["action"] for e in sink.named(EventName.CONTROL_DENIED)] == [
            "install"
        ] * 8
        assert backend.written == {} and backend.calls == []


def test_sixteen_invoke_clients_on_a_plugin_whose_calls_hang(tmp_path: Path) -> None:
    backend = FakeBackend.with_plugins("slow", "hello")
    backend.gate = threading.Event()  # every invoke waits for it (the test opens it last)
    answers: list[bytes] = []

    def invoker(path: str) -> None:
        with ControlClient(path, timeout=BOUND * 3) as client:
            answers.append(client.invoke("slow", b"x"))

    with running(config(tmp_path / "c.sock"), backend) as (server, _, _):
        threads = [threading.Thread(target=invoker, args=(server.socket_path,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        try:
            assert server.wait_until(lambda s: s.requests >= 16, BOUND)
            admin_status_answers(server)
            with ControlClient(server.socket_path, timeout=BOUND) as client:
                client.reload()
                client.action("hello", "pause")
                client.remove("hello")
            assert answers == []  # the attack was still on: every invoke still held
        finally:
            backend.gate.set()
            for thread in threads:
                thread.join(BOUND)
        assert answers == [b"X"] * 16
        assert [c[0] for c in backend.calls] == ["reload", "pause", "remove"]


@pytest.mark.parametrize(
    "nested",
    [
        b'{"v":' * 10_000 + b"1" + b"}" * 10_000,  # 60 KB: within the 64 KiB cap
        # 60 KB of `"\` (an unterminated string of escapes): the depth check's old string
        # pattern took ~25 s of CPU, GIL held, on each
        b'"\\' * 30_000,
    ],
    ids=["nested", "escapes"],
)
def test_a_flood_of_deeply_nested_json(tmp_path: Path, nested: bytes) -> None:
    raw = (
        b"POST /v1/plugins/hello/allow-downgrade HTTP/1.1\r\n"
        b"Content-Length: " + str(len(nested)).encode() + b"\r\n\r\n" + nested
    )
    stop = threading.Event()
    statuses: list[int] = []

    def flood(path: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(BOUND)
            sock.connect(path)
            while not stop.is_set():
                sock.sendall(raw)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(65536)
                statuses.append(int(head.split()[1]))
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = head.partition(b"\r\n\r\n")[2]
                while len(body) < length:
                    body += sock.recv(65536)
                assert json.loads(body)["error"]["code"] == "malformed_json"

    with running(config(tmp_path / "c.sock")) as (server, backend, _):
        threads = [threading.Thread(target=flood, args=(server.socket_path,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            assert server.wait_until(lambda s: s.requests >= 32, BOUND)
            admin_status_answers(server)
        finally:
            stop.set()
            for thread in threads:
                thread.join(BOUND)
        assert statuses and set(statuses) == {400}
        assert backend.calls == []


@dataclass
class TurnsSlow(FakeBackend):
    """Its ``b"slow"`` input takes ``call_timeout_s`` on ``clock`` (as long as a call may);
    every invoke notes its thread."""

    clock: ManualClock = field(default_factory=ManualClock)
    threads: list[str] = field(default_factory=list)

    def invoke(
        self, name: str, data: bytes, wait_s: float | None = None, function: str = "handle"
    ) -> bytes:
        self.threads.append(threading.current_thread().name)
        if data == b"slow":
            self.clock.advance(self.call_timeout_s)
        return super().invoke(name, data, wait_s, function)


def test_a_plugin_that_turns_slow_is_taken_off_the_loop_thread(tmp_path: Path) -> None:
    backend = TurnsSlow.with_plugins("hello")
    with running(config(tmp_path / "c.sock"), backend, backend.clock) as (server, _, _):
        with ControlClient(server.socket_path) as client:
            for _ in range(40):
                assert client.invoke("hello", b"x") == b"X"
            lane, loop = backend.threads[:32], backend.threads[32:]
            assert all(name.startswith("forgeoned-invoke") for name in lane)  # probation
            assert loop == ["forgeoned-control-loop"] * 8  # then on the loop thread
            assert client.invoke("hello", b"slow") == b"SLOW"  # inline: the loop held it
            backend.threads.clear()
            for _ in range(40):
                assert client.invoke("hello", b"x") == b"X"
        assert all(name.startswith("forgeoned-invoke") for name in backend.threads)
        stats = server.statistics()
        assert (stats.inline_calls, stats.inline_demotions) == (9, 1)


def test_a_plugin_whose_calls_may_be_long_never_runs_on_the_loop_thread(tmp_path: Path) -> None:
    # Found by replay: 64 fast calls, then one of 8 s on the loop thread held an admin's
    # `status` 7.5 s. A plugin whose call timeout exceeds the inline bound (1 s) is served in
    # the invoke lane however fast its calls have been, so a slow input holds only its lane.
    backend = TurnsSlow.with_plugins("hello")
    backend.call_timeout_s = 20.0
    with running(config(tmp_path / "c.sock"), backend, backend.clock) as (server, _, _):
        with ControlClient(server.socket_path) as client:
            for _ in range(64):
                assert client.invoke("hello", b"x") == b"X"
            assert client.invoke("hello", b"slow") == b"SLOW"
        assert len(backend.threads) == 65
        assert all(name.startswith("forgeoned-invoke") for name in backend.threads)
        assert server.statistics().inline_calls == 0
