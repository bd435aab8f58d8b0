"""Cost of the ``http_request`` host hook beside a raw client request, in the same run.

Both sides send ``GET /`` to one local HTTP/1.1 server on 127.0.0.1 (a thread of this
process, answering 2 bytes), one new connection per request, as the hook does:

- *raw*: ``httpcore.HTTPConnection`` + ``request`` from Python, nothing around it;
- *hook*: a wasm export calling ``forgeone.http_request`` with the same request: decoding the
  request head, the allowlist, the address check (127.0.0.1 granted by ``allow_cidrs``), the
  checked backend with its deadline stream, the concurrency slot, encoding the response and
  copying it into linear memory, plus the wasm call itself.

The difference is what the hook costs per request. Figures are µs per request, thread CPU
time (the server's threads excluded) best and median of the rounds, wall-clock in brackets.
``bench/calls.py`` prints these two rows in its own run; alone:
``.venv/bin/python bench/http_hook.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import wasmtime

from forgeoned.adapters.http.backend import SystemResolver
from forgeoned.adapters.http.hook import HttpHook, secret_reader, ssl_context
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent
from forgeoned.core.http_grant import HttpGrant
from forgeoned.core.http_wire import decode_response, encode_request
from forgeoned.core.manifest import Capabilities, Limits
from forgeoned.core.netrules import parse_cidrs
from forgeoned.core.origins import parse_origin_pattern
from forgeoned.core.stats import PluginStats

Figure = dict[str, float]
Measure = Callable[[Callable[[], Any], int, int], Figure]  # (fn, calls, rounds) -> figure


class _NoAudit:
    def record(self, event: AuditEvent) -> None:
        raise AssertionError(f"unexpected audit event {event}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def local_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def module(request: bytes) -> bytes:
    data = "".join(f"\\{b:02x}" for b in request)
    return bytes(wasmtime.wat2wasm(f"""
    (module
      (import "forgeone" "http_request" (func $http (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "{data}")
      {"".join(f'(func (export "{e}") (result i32) i32.const 0)'
               for e in ("init", "start", "stop", "pause", "resume", "unload"))}
      (func (export "req") (result i32)
        (call $http (i32.const 0) (i32.const {len(request)}) (i32.const 4096) (i32.const 4096))))
    """))  # fmt: skip


def bench(requests: int, rounds: int, per_call: Measure) -> dict[str, Figure]:
    with local_server() as port, WasmtimeRuntime() as runtime:
        origin = f"http://127.0.0.1:{port}"
        grant = HttpGrant(allow=frozenset({parse_origin_pattern(origin)}),
                          allow_cidrs=parse_cidrs(["127.0.0.1/32"]))  # fmt: skip
        resolver = SystemResolver()
        hook = HttpHook(grant.allow, grant, resolver, ssl_context(None), secret_reader(None),
                        threading.BoundedSemaphore(4))  # fmt: skip
        services = HostServices(
            plugin="bench", version="1.0.0", capabilities=Capabilities(http=grant.allow),
            env={}, secrets_dir=None, kv=None, audit=_NoAudit(),
            log=lambda plugin, level, message: None, clock=SystemClock(), stats=PluginStats(),
            http=hook,
        )  # fmt: skip
        request = encode_request("GET", origin + "/", [])
        limits = Limits(call_timeout_ms=60_000)
        with runtime.instantiate(runtime.compile(module(request)), limits, services) as inst:
            req = inst.export_i32("req")
            size = req()
            response = inst.host.memory.read(4096, size)
            assert response is not None and decode_response(response)[::2] == (200, b"ok")
            hooked = per_call(req, requests, rounds)

        def raw() -> None:
            conn = httpcore.HTTPConnection(httpcore.Origin(b"http", b"127.0.0.1", port))
            with conn:
                assert conn.request("GET", origin + "/").content == b"ok"

        plain = per_call(raw, requests, rounds)
        resolver.close()
    return {"raw": plain, "hook": hooked}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    requests, rounds = (100, 3) if args.quick else (1_000, 5)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.calls import per_call

    figures = bench(requests, rounds, per_call)
    extra = figures["hook"]["cpu_best"] - figures["raw"]["cpu_best"]
    if args.json:
        print(json.dumps({"us_per_request": figures, "hook_extra_cpu_us": extra}, indent=2))
        return 0
    for name, f in figures.items():
        print(f"{name:<6}{f['cpu_best']:9.1f} ({f['cpu_median']:.1f}) [{f['wall_best']:.1f}] µs")
    print(f"the hook adds {extra:.1f} µs of CPU per request (one connection per request)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
