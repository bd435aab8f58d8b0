"""Local HTTP(S) servers that count connections, a test CA, a fake resolver, and the WAT
plugin that passes its input to ``http_request`` (:data:`WAT`).

A :class:`CountingServer` serves a few fixed paths on one address and counts every TCP
connection it accepts, so a test can prove that a refused request never reached it.
``/slow`` blocks until the test sets :attr:`CountingServer.release` (bounded wait), never
on a sleep.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from runtime_wat import plugin_wat


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self) -> None:
        owner = self.server.owner
        if self.path == "/stall":  # never reads the body: the client's writes block
            owner.arrived.set()
            owner.release.wait(30)
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner.requests.append((self.command, self.path, dict(self.headers.items()), body))
        path = self.path.split("?")[0]
        if path == "/ok":
            self._send(200, b"hello", {"Content-Type": "text/plain", "X-Test": "1"})
        elif path == "/echo":
            self._send(200, body)
        elif path == "/big":
            self._send(200, b"x" * owner.big)
        elif path == "/slow":
            owner.arrived.set()
            owner.release.wait(30)
            self._send(200, b"late")
        elif path.startswith("/redirect/"):
            self._send(302, b"", {"Location": owner.redirects[path.removeprefix("/redirect/")]})
        else:
            self._send(404, b"no such path")

    do_GET = do_POST = do_HEAD = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: CountingServer

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        self.owner.connections += 1
        if self.owner.tls is not None:
            sock = self.owner.tls.wrap_socket(sock, server_side=True)
        return sock, addr


@dataclass
class CountingServer:
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    big: int = 5000
    connections: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    redirects: dict[str, str] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)  # /slow was asked
    _server: _Server | None = None

    def __enter__(self) -> CountingServer:
        server = _Server((self.host, 0), _Handler)
        server.owner = self
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (it is its own CA): (cert.pem, key.pem)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class FakeResolver:
    """Names to fixed addresses; IP literals resolve to themselves; records every lookup."""

    names: dict[str, list[str]]
    lookups: list[str] = field(default_factory=list)

    def resolve(self, host: str, port: int, timeout_s: float) -> Sequence[str]:
        self.lookups.append(host)
        if host in self.names:
            return self.names[host]
        if host[:1].isdigit() or ":" in host:
            return [host]
        raise OSError(f"{host}: name not known")


RESP, CAP = 8192, 65536
# handle(ptr, len): r = http_request(input, resp 8192/65536); output r (4 bytes LE), then the
# response if it was copied.
HANDLE = f"""
  (local $r i32)
  (local.set $r (call $http_request (local.get $ptr) (local.get $len)
                                    (i32.const {RESP}) (i32.const {CAP})))
  (i32.store (i32.const 4096) (local.get $r))
  (drop (call $output (i32.const 4096) (i32.const 4)))
  (if (i32.and (i32.ge_s (local.get $r) (i32.const 0)) (i32.le_s (local.get $r) (i32.const {CAP})))
    (then (drop (call $output (i32.const {RESP}) (local.get $r)))))
  i32.const 0
"""


def http_wat(pages: int = 2) -> bytes:
    memory = f'(memory (export "memory") {pages})'
    return plugin_wat(imports=("http_request", "output"), memory=memory, handle=HANDLE)


WAT = http_wat()
