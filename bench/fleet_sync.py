"""Does following an OCI source cost the call path anything? Same run, alternating phases.

A real ``docker-registry`` on 127.0.0.1 (its own storage, stopped after), a signed plugin
pushed with ``forgeonectl push``, and the real daemon in-process following it. The call path
(``invoke`` of the plugin, in this thread, as the control API's workers do) is timed in
alternating phases:

* ``idle``: the source is configured but not syncing (its next poll is an hour away);
* ``polling``: another thread syncs the source once a second (``interval_s = 1``, the
  smallest the configuration allows; the default is 300);
* ``syncing``: another thread syncs the source back to back, as fast as it can (manifest
  GET, layout checks, the held file hashed and its signature verified again): hundreds of
  times the load of any real ``interval_s``, the worst case for GIL contention.

    .venv/bin/python bench/fleet_sync.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon_common import in_process, layout, scratch, signed, summary
from forgeoned.cli import main as forgeonectl


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = root / "registry.yml"
    config.write_text(f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
                      f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}}}\n"
                      f"http: {{addr: 127.0.0.1:{port}}}\n")  # fmt: skip
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed (apt-get install docker-registry)")
    proc = subprocess.Popen([binary, "serve", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            threading.Event().wait(0.05)
    return proc, f"127.0.0.1:{port}"


def _phase(daemon: object, seconds: float) -> list[float]:
    invoke = daemon.backend.invoke  # type: ignore[attr-defined]
    out = []
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        invoke("hello", b"x" * 64)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with scratch() as root:
        proc, host = _registry(root)
        try:
            wasm = root / "hello.wasm"
            wasm.write_bytes(signed("hello", "1.0.0"))
            ref = f"oci://{host}/plugins/hello:stable"
            config = layout(root, extra=f'[[sources]]\nname = "hello"\nreference = "{ref}"\n'
                                        "plain_http = true\ninterval_s = 3600\n")  # fmt: skip
            code = forgeonectl(["push", str(wasm), ref, "--trust", str(root / "trusted.d"),
                                "--plain-http"])  # fmt: skip
            assert code == 0
            with in_process(config) as daemon:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not any(
                    v.state == "running" for v in daemon.backend.list_plugins()
                ):
                    threading.Event().wait(0.05)
                follower = daemon.parts.sources
                results: dict[str, list[float]] = {"idle": [], "polling": [], "syncing": []}
                syncs = 0
                sync_time = 0.0
                for _ in range(args.rounds):
                    results["idle"] += _phase(daemon, args.seconds)
                    tick = threading.Event()

                    def poll(stop: threading.Event = tick) -> None:
                        while not stop.is_set():
                            follower.sync("hello")
                            stop.wait(1.0)

                    p = threading.Thread(target=poll)
                    p.start()
                    results["polling"] += _phase(daemon, args.seconds)
                    tick.set()
                    p.join()
                    stop = threading.Event()

                    def churn(stop: threading.Event = stop) -> None:
                        nonlocal syncs
                        while not stop.is_set():
                            follower.sync("hello")
                            syncs += 1

                    t = threading.Thread(target=churn)
                    t0 = time.perf_counter()
                    t.start()
                    results["syncing"] += _phase(daemon, args.seconds)
                    stop.set()
                    t.join()
                    sync_time += time.perf_counter() - t0
                report = {k: summary(v) for k, v in results.items()}
                for k, v in results.items():
                    report[k]["calls_per_s"] = round(len(v) / (args.seconds * args.rounds))
                report["syncing"]["syncs_per_s"] = round(syncs / sync_time, 1)
                print(json.dumps(report, indent=2))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
