"""A TCP proxy in front of a real registry that trickles its answers: the first ``free`` bytes
of each connection pass at once (the manifest), the rest at ``step`` bytes per ``pace``
seconds, so that a layer keeps arriving, byte by byte, long past any timeout while no single
read ever waits long. It counts what it forwarded, which tells whether a client gave up."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Trickle:
    host: str  # 127.0.0.1:PORT
    upstream: str = ""  # HOST:PORT, may be set once the proxy runs (before a client comes)
    sent: int = 0  # bytes forwarded to clients, all connections together
    lock: threading.Lock = field(default_factory=threading.Lock)


def _pipe(src: socket.socket, dst: socket.socket, stop: threading.Event) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _trickle(
    src: socket.socket, dst: socket.socket, t: Trickle, stop: threading.Event,
    free: int, step: int, pace: float,
) -> None:  # fmt: skip
    passed = 0
    try:
        while not stop.is_set() and (data := src.recv(65536)):
            while data and not stop.is_set():
                n = len(data) if passed < free else step
                n = min(n, free - passed) if passed < free else n
                dst.sendall(data[:n])
                with t.lock:
                    t.sent += n
                passed, data = passed + n, data[n:]
                if passed >= free:
                    stop.wait(pace)  # the fault being simulated: a slow registry
    except OSError:
        pass  # the client hung up: what it wanted to show
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def trickle_proxy(
    upstream: str = "", free: int = 4096, step: int = 32, pace: float = 0.02
) -> Iterator[Trickle]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    t = Trickle(f"127.0.0.1:{listener.getsockname()[1]}", upstream)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client = listener.accept()[0]
            except TimeoutError:
                continue
            except OSError:
                return
            if not t.upstream:
                client.close()  # no registry behind it yet: a refused connection
                continue
            up_host, up_port = t.upstream.rsplit(":", 1)
            server = socket.create_connection((up_host, int(up_port)), timeout=10)
            server.settimeout(None)
            sockets.extend((client, server))
            for target, args in (
                (_pipe, (client, server, stop)),
                (_trickle, (server, client, t, stop, free, step, pace)),
            ):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                threads.append(thread)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield t
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for thread in threads:
            thread.join(5)
