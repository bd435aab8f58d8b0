"""What auditing calls costs, measured in alternating rounds (``bench/invoke.py --alternate``).

Two pairs, each started once and then measured round by round with the order swapped every
round (audited first, then not; then the other way), so that a change of the shared
machine's load hits both alike:

* ``control+memory`` against ``control+memory, calls not audited`` (servers in this process:
  their CPU time is this process's, clients being separate processes);
* ``daemon+sample`` against the same daemon with invokes not recorded (CPU time read from
  ``/proc/PID/stat`` of each daemon).

Printed per pair and client count: the median throughput of each, the median of the
per-round ratios, the server CPU time per request of each, and the load average.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.invoke import PAYLOAD, measure, run_control
from bench.invoke_backends import MemoryBackend
from bench.invoke_daemon import SampleDaemon

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


Cpu = Callable[[], float]


def compare(rounds: int, seconds: float, clients: list[int]) -> int:
    print(f"alternating rounds={rounds} seconds={seconds} load={os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        mem = {
            "audited": (run_control(f"{tmp}/a.sock", MemoryBackend()), f"{tmp}/a.sock"),
            "not audited": (
                run_control(f"{tmp}/u.sock", MemoryBackend(), ledger=False),
                f"{tmp}/u.sock",
            ),
        }
        try:
            own = time.process_time
            pair = {k: (path, "bench", own) for k, (_, path) in mem.items()}
            _pair("control+memory", pair, rounds, seconds, clients)
        finally:
            for stop, _ in mem.values():
                stop()
        daemons = {
            "audited": SampleDaemon(Path(tmp) / "d-a"),
            "not audited": SampleDaemon(Path(tmp) / "d-u", audited=False),
        }
        try:
            pair = {k: (d.socket, "sample", _cpu_of(d.proc.pid)) for k, d in daemons.items()}
            _pair("daemon+sample", pair, rounds, seconds, clients)
        finally:
            for d in daemons.values():
                d.close()
    print(f"load={os.getloadavg()}")
    return 0


def _cpu_of(pid: int) -> Cpu:
    return lambda: _proc_cpu(pid)


def _pair(
    label: str,
    targets: dict[str, tuple[str, str, Cpu]],
    rounds: int,
    seconds: float,
    clients: list[int],
) -> None:
    for n in clients:
        rps: dict[str, list[float]] = {k: [] for k in targets}
        cpu: dict[str, list[float]] = {k: [] for k in targets}
        for r in range(rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                path, plugin, clock = targets[name]
                before = clock()
                got = measure(path, n, seconds, plugin, [PAYLOAD])
                cpu[name].append((clock() - before) / got["n"] * 1e6)
                rps[name].append(got["rps"])
        a, u = rps["audited"], rps["not audited"]
        ratio = statistics.median(x / y for x, y in zip(a, u, strict=True))
        ca, cu = statistics.median(cpu["audited"]), statistics.median(cpu["not audited"])
        print(
            f"{label} clients={n}: audited {statistics.median(a):,.0f} req/s, not audited "
            f"{statistics.median(u):,.0f} req/s, ratio (median of rounds) {ratio:.3f}; "
            f"server CPU/request {ca:.2f} vs {cu:.2f} µs ({ca - cu:+.2f}); "
            f"load={os.getloadavg()[0]:.2f}",
            flush=True,
        )
