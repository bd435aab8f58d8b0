"""Before/after: the daemon's invoke path from two checkouts, measured in alternation.

Two real ``forgeoned`` processes host the signed Rust sample (one instance), one running the
code of ``--before`` (an older checkout), one this checkout's; a bare asyncio HTTP echo (the
floor of bench/invoke.py) runs in this process. Each round measures the floor, then the two
daemons in turn (A B, B A alternating, so neither always runs second), ``--seconds`` each, with
the same 16 client processes as bench/invoke.py, for every input asked; the load average is
printed with every round (the machine is shared). The medians of the rounds come last.

While the clients run, a thread here asks the daemon for ``status`` (``GET /v1/plugins`` on a
fresh connection, as forgeonectl does) every 50 ms: the slowest answer is printed, to show
what the invoke load does to the control lane.

    .venv/bin/python bench/invoke_ab.py --before /work/baseline [--rounds 4] [--seconds 3]
        [--clients 16] [--inputs default,sizes,time]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.invoke import INPUTS, PAYLOAD, measure, run_floor
from bench.invoke_daemon import REPO, SampleDaemon
from forgeoned.adapters.control.client import ControlClient


def probed(sock: str, clients: int, seconds: float, payloads: list[bytes]) -> dict[str, float]:
    """``measure`` with a status probe every 50 ms meanwhile; adds ``status_max_ms``."""
    stop = threading.Event()
    waits: list[float] = []

    def probe() -> None:
        while not stop.wait(0.05):
            started = time.perf_counter()
            with ControlClient(sock, timeout=30) as client:
                client.list_plugins()
            waits.append((time.perf_counter() - started) * 1000)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        result = measure(sock, clients, seconds, "sample", payloads)
    finally:
        stop.set()
        thread.join()
    return {**result, "status_max_ms": max(waits, default=0.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the older checkout")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--inputs", default="default,sizes")
    args = parser.parse_args()
    inputs = [INPUTS[name] for name in args.inputs.split(",")]
    results: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, r: dict[str, float]) -> None:
        results.setdefault(name, []).append((r["rps"], r["p99_ms"]))
        load = os.getloadavg()[0]
        status = f"  status max {r['status_max_ms']:.1f} ms" if "status_max_ms" in r else ""
        print(
            f"{name:<40}{r['rps']:>9.0f}/s  p50 {r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f} ms"
            f"{status}  (load {load:.1f})",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        floor = f"{tmp}/floor.sock"
        stop_floor = run_floor(floor)
        before = SampleDaemon(Path(tmp) / "before", code=args.before.resolve())
        after = SampleDaemon(Path(tmp) / "after", code=REPO)
        daemons = [("before", before), ("after", after)]
        try:
            for i in range(args.rounds):
                print(f"--- round {i + 1}", flush=True)
                record(
                    "floor",
                    measure(floor, args.clients, args.seconds, payloads=[PAYLOAD]),
                )
                order = daemons if i % 2 == 0 else daemons[::-1]
                for label, payloads in inputs:
                    for name, daemon in order:
                        r = probed(daemon.socket, args.clients, args.seconds, payloads)
                        record(f"{name}{label}", r)
        finally:
            before.close()
            after.close()
            stop_floor()
    print(f"--- medians of {args.rounds} rounds, {args.clients} clients, {args.seconds:g} s each")
    floors = [rps for rps, _ in results["floor"]]
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        # the share of the floor measured in the same round, then the median of those
        shares = [r / f for (r, _), f in zip(runs, floors, strict=True)]
        share = f"{100 * statistics.median(shares):5.1f} % of the floor" if name != "floor" else ""
        print(f"{name:<40}{rps:>9.0f}/s  p99 {p99:.3f} ms  {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
