"""Swap under load: clients call ``handle`` continuously while 20 versions are swapped in.

The daemon is the real ``forgeoned`` process; the clients are threads of this process using
the control API over the Unix socket (``POST /v1/plugins/NAME/invoke``, keep-alive), as
``forgeonectl invoke`` does. Every call is accounted for: answered (by which version),
failed (an error answer), or lost (no answer at all). The longest stall is the longest
single call. Target (issue 4): >= 1,000 calls/s, 0 failed, 0 lost.

Run: ``.venv/bin/python bench/swap_under_load.py [--versions 20] [--clients 4] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon_common import layout, rename_in, scratch, signed, summary
from forgeoned.adapters.control.client import ControlClient
from forgeoned.errors import ForgeonedError


class Client(threading.Thread):
    def __init__(self, sock: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.stop = stop
        self.durations: list[float] = []
        self.answers: Counter[bytes] = Counter()
        self.failed: list[str] = []
        self.lost: list[str] = []

    def run(self) -> None:
        client = ControlClient(self.sock, timeout=60)
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                out = client.invoke("hello", b"load")
            except ForgeonedError as exc:
                self.failed.append(str(exc))
                continue
            except OSError as exc:  # no answer at all
                self.lost.append(str(exc))
                client.close()
                client = ControlClient(self.sock, timeout=60)
                continue
            self.durations.append(time.perf_counter() - t0)
            self.answers[out.split(b":")[0]] += 1
        client.close()


def wait_ready(sock: socket.socket) -> None:
    while "READY=1" not in sock.recv(4096).decode().splitlines():
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--gap-s", type=float, default=0.25, help="load between two swaps")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with scratch() as root:
        config = layout(root, "drain_timeout_s = 5")
        plugins = root / "plugins.d"
        rename_in(plugins, "hello.wasm", signed("hello", "1.0.0"))
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(root / "run/notify.sock"))
        notify.settimeout(120)
        env = {**os.environ, "NOTIFY_SOCKET": str(root / "run/notify.sock")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "forgeoned.daemon", "--config", str(config)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(notify)
            stop = threading.Event()
            clients = [Client(str(root / "run/control.sock"), stop) for _ in range(args.clients)]
            artifacts = [signed("hello", f"1.0.{i}") for i in range(1, args.versions + 1)]
            t0 = time.perf_counter()
            for c in clients:
                c.start()
            swap_times: list[float] = []
            for i, data in enumerate(artifacts, start=1):
                time.sleep(args.gap_s)  # pacing of the deploys, not a wait for a condition
                before = time.perf_counter()
                rename_in(plugins, "hello.wasm", data)
                with ControlClient(str(root / "run/control.sock")) as ctl:
                    while ctl.show("hello")["version"] != f"1.0.{i}":
                        time.sleep(0.001)
                swap_times.append(time.perf_counter() - before)
            time.sleep(args.gap_s)
            stop.set()
            for c in clients:
                c.join(60)
            elapsed = time.perf_counter() - t0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
            notify.close()
    durations = [d for c in clients for d in c.durations]
    answers: Counter[bytes] = sum((c.answers for c in clients), Counter())
    failed = [f for c in clients for f in c.failed]
    lost = [x for c in clients for x in c.lost]
    result: dict[str, Any] = {
        "versions_swapped": args.versions,
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "calls": len(durations) + len(failed),
        "calls_per_s": round((len(durations) + len(failed)) / elapsed),
        "failed": len(failed),
        "lost": len(lost),
        "longest_stall_ms": round(max(durations) * 1000, 2),
        "call": summary(durations),
        "swap_visible": summary(swap_times),
        "versions_that_answered": len(answers),
        "errors": sorted(set(failed + lost))[:5],
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{args.versions} swaps under load, {args.clients} clients, {result['seconds']} s")
        print(f"  calls: {result['calls']} ({result['calls_per_s']}/s), failed "
              f"{result['failed']}, lost {result['lost']}")  # fmt: skip
        call = result["call"]
        print(f"  call latency: p50 {call['p50_ms']} ms, p99 {call['p99_ms']} ms, "
              f"longest stall {result['longest_stall_ms']} ms")  # fmt: skip
        print(f"  versions that answered: {len(answers)} of {args.versions + 1}")
        for e in result["errors"]:
            print(f"  error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
