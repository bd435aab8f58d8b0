"""Audit append throughput with fsync: audited events per second that are durable on return.

Measures, in one run, on the file system of ``--dir`` (default: a temp dir):

- ``floor``: the disk alone, one ``os.write`` + ``fdatasync`` of a 350-byte line per event;
- ``AuditLog, 1 thread``: :meth:`AuditLog.record` in a loop (hash chain, canonical JSON,
  write, fdatasync, a signed checkpoint every 1,000 entries);
- ``AuditLog, 8 threads``: the same from 8 threads; concurrent records share one fdatasync
  (group commit), which is how a busy daemon records;
- ``AuditTrail, 8 threads``: the daemon's sink: log first, then the non-blocking journal
  queue (a null journal here, so journald's own speed is not measured).

Each figure is the best of ``--rounds`` rounds (median in parentheses), events/s wall clock.
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

from forgeoned.adapters.audit_log import AuditLog
from forgeoned.adapters.audit_trail import AuditTrail
from forgeoned.adapters.journald import JournaldSink, JournalWriter
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


def _floor(directory: Path, n: int) -> float:
    fd = os.open(directory / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    line = b"x" * 349 + b"\n"
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(fd, line)
        os.fdatasync(fd)
    elapsed = time.perf_counter() - t0
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


def _trail_rate(directory: Path, n: int, workers: int) -> float:
    stats = DaemonStats()
    writer = JournalWriter(stats, send=lambda fields: None)
    trail = AuditTrail(AuditLog(directory, SystemClock()), JournaldSink(writer), stats)
    try:
        return _threads(n, workers, trail.record)
    finally:
        trail.close()
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases: dict[str, Callable[[Path], float]] = {
        "floor (write+fdatasync)": lambda d: _floor(d, args.events),
        "AuditLog, 1 thread": lambda d: _log_rate(d, args.events, 1),
        "AuditLog, 8 threads": lambda d: _log_rate(d, args.events, 8),
        "AuditTrail, 8 threads": lambda d: _trail_rate(d, args.events, 8),
    }
    results: dict[str, dict[str, float]] = {}
    for name, case in cases.items():
        rates = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                rates.append(case(Path(tmp)))
        results[name] = {"best": max(rates), "median": statistics.median(rates)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"audited events/s, durable on return ({args.events} events, best of {args.rounds})")
    for name, figures in results.items():
        print(f"  {name:28s} {figures['best']:9.0f}  ({figures['median']:.0f})")
    target = results["AuditLog, 1 thread"]["best"]
    print(f"target >= 2,000/s single writer: {'met' if target >= 2000 else 'NOT met'}")


if __name__ == "__main__":
    main()
