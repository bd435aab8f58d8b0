"""Control API ``invoke`` round trip over the Unix socket: latency p50/p99 and throughput.

Targets measured in the same run, each with 1 and 16 concurrent clients:

* ``floor``: a bare asyncio HTTP/1.1 echo handler on a Unix socket (no routing, no policy, no
  threads): the cost of HTTP-over-Unix-socket itself in this Python;
* ``control+memory``: the real ControlServer (parser, routing, SO_PEERCRED caller, RBAC, worker
  pool) over a backend whose ``invoke`` upper-cases the input in Python;
* ``control+memory, calls not audited``: the same with the ``plugin.calls`` ledger off, to
  show what auditing calls costs (summaries per interval, nothing written per call);
* ``control+wasm``: the real ControlServer over a backend that calls ``handle`` of an inline
  WAT echo plugin (or ``--wasm``) through forgeoned's wasmtime runtime adapter, one instance
  per worker thread;
* ``daemon+sample``: a real ``forgeoned`` process (its own process, started here) hosting the
  signed Rust sample plugin (``make plugins`` builds it), invoked through its control socket,
  with three inputs: ``!time`` (one host call), the default input (counts in memory; the
  counter is persisted every 1,000 calls) and ``!kv-set`` (one durable, fsync'd kv write per
  call: the disk-bound path).

  A fourth input, ``sizes``, is the default one at 16 lengths (56 to 71 bytes) in turn, so
  that no two requests in a row have the same head: the control server's head cache
  (:mod:`forgeoned.adapters.control.parser`) never hits and every request is parsed and
  authorised afresh, as for a client whose inputs vary in size.

* ``daemon+sample, calls not audited``: the same daemon with invokes not recorded (no
  ``plugin.calls`` summaries, no live records), for comparison.

``--alternate ROUNDS`` measures instead what auditing calls costs, in alternating rounds
(:mod:`bench.invoke_alternate`): each pair (audited, not audited) runs side by side, the
order swapped every round, reporting throughput, the server's CPU time per request and the
load average.

Clients are separate processes (fork), each holding one keep-alive connection and sending a
fixed 64-byte input with a pre-built request; the servers run in this process. Both share the
machine's cores, so the figures include the clients' own CPU.

    .venv/bin/python bench/invoke.py [--seconds 5] [--clients 1,16] [--wasm FILE]
        [--only floor,memory,calls,wasm,daemon,daemon-calls]
        [--inputs time,default,sizes,kv-set] [--sample-instances 1,2] [--alternate ROUNDS]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.invoke_backends import MemoryBackend, NullSink, WasmBackend
from bench.invoke_daemon import SampleDaemon
from forgeoned.adapters.control.records import ControlRecords
from forgeoned.adapters.control.server import ControlServer
from forgeoned.core.control_config import parse_control_config
from forgeoned.core.policy import Caller

PAYLOAD = b"x" * 64


def request_bytes(plugin: str, payload: bytes) -> bytes:
    return (
        f"POST /v1/plugins/{plugin}/invoke HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def client(
    sock_path: str, plugin: str, payloads: list[bytes], seconds: float, start_at: float, out: Any
) -> None:
    """One client process: keep-alive requests back to back (cycling through ``payloads``);
    sends its latencies (µs)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sock_path)
    requests = [request_bytes(plugin, payload) for payload in payloads]
    turn = 0
    lat: list[float] = []
    while time.monotonic() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    buf = b""
    while True:
        if time.monotonic() >= end:
            break
        req = requests[turn % len(requests)]
        turn += 1
        t0 = time.perf_counter()
        sock.sendall(req)
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                head = buf[:head_end]
                i = head.lower().find(b"content-length:") + 15
                length = int(head[i:].split(b"\r\n", 1)[0])
                total = head_end + 4 + length
                if len(buf) >= total:
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise SystemExit(f"bad answer: {head[:60]!r}")
                    buf = buf[total:]
                    break
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("server closed the connection")
            buf += chunk
        lat.append((time.perf_counter() - t0) * 1e6)
    sock.close()
    out.send(lat)
    out.close()


def measure(
    sock_path: str,
    clients: int,
    seconds: float,
    plugin: str = "bench",
    payloads: list[bytes] | None = None,
) -> dict[str, float]:
    ctx = mp.get_context("fork")
    start_at = time.monotonic() + 0.5
    pipes, procs = [], []
    for _ in range(clients):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=client,
            args=(sock_path, plugin, payloads or [PAYLOAD], seconds, start_at, child),
        )
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    lat: list[float] = []
    for pipe in pipes:
        lat.extend(pipe.recv())
    for proc in procs:
        proc.join()
    lat.sort()
    return {
        "clients": clients,
        "rps": len(lat) / seconds,
        "p50_ms": statistics.median(lat) / 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] / 1000,
        "n": len(lat),
    }


class EchoFloor(asyncio.Protocol):
    """The floor: parse just enough HTTP to answer the body back."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < end + 4 + n:
                return
            body = self.buf[end + 4 : end + 4 + n]
            self.buf = self.buf[end + 4 + n :]
            self.t.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                + f"Content-Length: {n}\r\n\r\n".encode()
                + body.upper()
            )


def run_floor(path: str) -> Callable[[], None]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        srv = loop.run_until_complete(loop.create_unix_server(EchoFloor, path))
        ready.set()
        loop.run_forever()
        srv.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return stop


class UnauditedRecords(ControlRecords):
    """Calls are not recorded at all (no key made, no clock read, no ledger): the control
    server as it was before calls were audited, to measure the whole per-call cost."""

    def called(
        self,
        caller: Caller,
        plugin: str,
        outcome: str,
        started: float,
        function: str = "handle",
        fuel: int = 0,
        now: float | None = None,
    ) -> None:
        return None


def run_control(path: str, backend: Any, *, ledger: bool = True) -> Callable[[], None]:
    cfg = parse_control_config(
        {"socket": path, "bindings": [{"anyone": True, "roles": ["operator"]}]}
    )
    server = ControlServer(cfg, backend, NullSink(), cfg.policy)
    if not ledger:
        old = server.dispatcher.records
        server.dispatcher.records = UnauditedRecords(
            old.audit, old.clock, old.throttle, old.calls, old.feed
        )
    server.start()
    return server.close


def run_daemon(tmp: str, instances: int, audited: bool = True) -> tuple[str, Callable[[], None]]:
    name = f"daemon-x{instances}" + ("" if audited else "-unaudited")
    daemon = SampleDaemon(Path(tmp) / name, instances, audited=audited)
    return daemon.socket, daemon.close


Start = Callable[[str], tuple[str, Callable[[], None]]]
KINDS = ("floor", "memory", "calls", "wasm", "daemon", "daemon-calls")
SIZES = [b"x" * n for n in range(56, 72)]  # 16 lengths: no two heads in a row alike
# "!time" makes one host call; the default input counts in memory (persisted every 1,000
# calls); "sizes" is the default input at 16 lengths in turn; "!kv-set" persists the counter
# durably (fsync) on every call.
INPUTS = {
    "time": (" !time", [b"!time"]),
    "default": (" default", [PAYLOAD]),
    "sizes": (" default, 16 sizes", SIZES),
    "kv-set": (" !kv-set", [b"!kv-set"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--wasm", type=Path, help="a plugin module exporting alloc/handle")
    parser.add_argument("--no-daemon", action="store_true", help="skip the daemon+sample target")
    parser.add_argument(
        "--only", default=",".join(KINDS), help=f"targets to run, among {','.join(KINDS)}"
    )
    parser.add_argument(
        "--inputs",
        default=",".join(INPUTS),
        help=f"the daemon's inputs to run, among {','.join(INPUTS)}",
    )
    parser.add_argument(
        "--sample-instances",
        default="1",
        help="one daemon per N in this list, each with the sample re-signed allowing N instances",
    )
    parser.add_argument(
        "--alternate",
        type=int,
        metavar="ROUNDS",
        help="only compare audited and unaudited calls, in ROUNDS alternating rounds",
    )
    args = parser.parse_args()
    if args.alternate:
        from bench.invoke_alternate import compare

        return compare(args.alternate, args.seconds, [int(c) for c in args.clients.split(",")])
    counts = [int(c) for c in args.clients.split(",")]
    only = set(args.only.split(","))
    if args.no_daemon:
        only -= {"daemon", "daemon-calls"}
    wasm = WasmBackend.load(args.wasm)
    # kind, label, plugin name, inputs (sub-label, payloads), start(tmp) -> (socket, stop)
    targets: list[tuple[str, str, str, list[tuple[str, list[bytes]]], Start]] = [
        (
            "floor",
            "floor (bare echo)",
            "bench",
            [("", [PAYLOAD])],
            lambda t: (f"{t}/f.sock", run_floor(f"{t}/f.sock")),
        ),
        (
            "memory",
            "control+memory",
            "bench",
            [("", [PAYLOAD]), (INPUTS["sizes"][0], SIZES)],
            lambda t: (f"{t}/m.sock", run_control(f"{t}/m.sock", MemoryBackend())),
        ),
        (  # the same without the audit of calls (plugin.calls summaries), for comparison
            "calls",
            "control+memory, calls not audited",
            "bench",
            [("", [PAYLOAD])],
            lambda t: (f"{t}/n.sock", run_control(f"{t}/n.sock", MemoryBackend(), ledger=False)),
        ),
        (
            "wasm",
            f"control+wasm ({wasm.source})",
            "bench",
            [("", [PAYLOAD])],
            lambda t: (f"{t}/w.sock", run_control(f"{t}/w.sock", wasm)),
        ),
    ]
    payloads = [INPUTS[name] for name in args.inputs.split(",")]
    for n in (int(i) for i in args.sample_instances.split(",")):
        label = "daemon+sample" + (f" x{n}" if n != 1 else "")
        targets.append(("daemon", label, "sample", payloads, partial(run_daemon, instances=n)))
    # the daemon again with invokes not recorded, for comparison (default input only)
    targets.append(
        (
            "daemon-calls",
            "daemon+sample, calls not audited",
            "sample",
            [INPUTS["default"]],
            partial(run_daemon, instances=1, audited=False),
        )
    )
    print(f"cpus={os.cpu_count()} seconds={args.seconds} clients in separate processes")
    print(f"{'target':<44}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, label, plugin, inputs, start in targets:
            if kind not in only:
                continue
            path, stop = start(tmp)
            try:
                for sub, sent in inputs:
                    for n in counts:
                        r = measure(path, n, args.seconds, plugin, sent)
                        name = label + sub
                        print(
                            f"{name:<44}{n:>8}{r['rps']:>10.0f}"
                            f"{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}",
                            flush=True,
                        )
            finally:
                stop()
    wasm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
