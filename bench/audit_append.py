"""Audit append throughput with fsync: audited events per second that are durable on return.

Measures, in one run, on the file system of ``--dir`` (default: a temp dir):

- ``floor``: the disk alone, one ``os.write`` + ``fdatasync`` of a 350-byte line per event;
- ``AuditLog, 1 thread``: :meth:`AuditLog.record` in a loop (hash chain, canonical JSON,
  write, fdatasync, a signed checkpoint every 1,000 entries);
- ``AuditLog, 8 threads``: the same from 8 threads; concurrent records share one fdatasync
  (group commit), which is how a busy daemon records;
- ``AuditTrail, 8 threads``: the daemon's sink: log first, then the non-blocking journal
  queue (a null journal here, so journald's own speed is not measured).

Rounds are interleaved (floor, 1 thread, 8 threads, trail, floor, …) so that every path sees
the same disk weather; each figure is the best of ``--rounds`` rounds (median in parentheses),
events/s wall clock. Also printed: per round, the 1-thread rate as a share of the floor
measured just before it (the rest of the gap to the floor is what the log adds), and the
thread CPU time per event of the 1-thread run and of the floor. Thread CPU time excludes
waiting for the disk but includes the kernel's own work in ``fdatasync``; the difference
between the two is the log's own cost per entry (encoding, hashing, locks, checkpoints).
Run: ``.venv/bin/python bench/audit_append.py [--events N] [--rounds R] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from forgeoned.adapters.audit.journald import JournaldSink, JournalWriter
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats

EVENT = AuditEvent(
    EventName.HOSTCALL_DENIED,
    plugin="hello",
    version="1.2.0",
    sha256="ab" * 32,
    actor="plugin",
    reason="secrets",
    message="secret_get('api-token') denied by capability",
    details={"function": "secret_get", "key": "api-token"},
)


FLOOR = "floor (write+fdatasync)"
CPU_US: list[float] = []  # thread CPU µs per entry of each 1-thread AuditLog round
FLOOR_CPU_US: list[float] = []  # the same for the floor (mostly the kernel's fdatasync)


def _floor(directory: Path, n: int) -> float:
    fd = os.open(directory / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    line = b"x" * 349 + b"\n"
    c0, t0 = time.thread_time(), time.perf_counter()
    for _ in range(n):
        os.write(fd, line)
        os.fdatasync(fd)
    elapsed = time.perf_counter() - t0
    FLOOR_CPU_US.append((time.thread_time() - c0) / n * 1e6)
    os.close(fd)
    return n / elapsed


def _threads(n: int, workers: int, record: Callable[[AuditEvent], object]) -> float:
    per = n // workers
    start = threading.Barrier(workers + 1)

    def work() -> None:
        start.wait()
        for _ in range(per):
            record(EVENT)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    return per * workers / (time.perf_counter() - t0)


def _log_rate(directory: Path, n: int, workers: int) -> float:
    log = AuditLog(directory, SystemClock())
    try:
        return _threads(n, workers, log.record)
    finally:
        log.close()


def _single_writer(directory: Path, n: int) -> float:
    """One thread recording in a loop; also notes its CPU time per entry in CPU_US."""
    log = AuditLog(directory, SystemClock())
    try:
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(n):
            log.record(EVENT)
        elapsed = time.perf_counter() - t0
        CPU_US.append((time.thread_time() - c0) / n * 1e6)
        return n / elapsed
    finally:
        log.close()


def _trail_rate(directory: Path, n: int, workers: int) -> float:
    stats = DaemonStats()
    writer = JournalWriter(stats, send=lambda fields: None)
    trail = AuditTrail(AuditLog(directory, SystemClock()), JournaldSink(writer), stats)
    try:
        return _threads(n, workers, trail.record)
    finally:
        trail.close()
        writer.close()


def _summary(values: list[float], best: Callable[[list[float]], float]) -> dict[str, float]:
    return {"best": best(values), "median": statistics.median(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases: dict[str, Callable[[Path], float]] = {
        FLOOR: lambda d: _floor(d, args.events),
        "AuditLog, 1 thread": lambda d: _single_writer(d, args.events),
        "AuditLog, 8 threads": lambda d: _log_rate(d, args.events, 8),
        "AuditTrail, 8 threads": lambda d: _trail_rate(d, args.events, 8),
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                rates[name].append(case(Path(tmp)))
    results = {name: _summary(r, max) for name, r in rates.items()}
    shares = [w / f for w, f in zip(rates["AuditLog, 1 thread"], rates[FLOOR], strict=True)]
    results["1 thread / floor, same round"] = _summary(shares, max)
    results["CPU us per entry, 1 thread"] = _summary(CPU_US, min)
    results["CPU us per floor write+sync"] = _summary(FLOOR_CPU_US, min)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"audited events/s, durable on return ({args.events} events, best of {args.rounds})")
    for name, figures in results.items():
        digits = 0 if figures["best"] >= 10 else 2
        print(f"  {name:30s} {figures['best']:9.{digits}f}  ({figures['median']:.{digits}f})")
    target = results["AuditLog, 1 thread"]["best"]
    print(f"target >= 2,000/s single writer: {'met' if target >= 2000 else 'NOT met'}")


if __name__ == "__main__":
    main()
