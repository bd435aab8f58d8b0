"""A scrape flood on /metrics does not starve a periodic loop running in the daemon process.

The flood comes from another process (its own GIL, like real scrapers, and niced: the clients'
own CPU use is not what is under test on a 2-core machine). The loop's lateness
under flood is compared with its own lateness without flood, not with a wall-clock figure;
and the collector must have run at most once per ``min_interval_s`` however many scrapes came.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from forgeoned.adapters.metrics import MetricsServer
from forgeoned.core.stats import DaemonStats, PluginStats, PluginView

PERIOD = 0.02
FLOOD = """
import sys, threading, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
count = [0]
stop = threading.Event()
def hammer():
    while not stop.is_set():
        count[0] += 1  # attempts: the demand, most of it waits in the listen backlog
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                r.read()
        except OSError:
            pass
threads = [threading.Thread(target=hammer) for _ in range(32)]
for t in threads: t.start()
stop.wait(seconds); stop.set()
for t in threads: t.join()
print(count[0])
"""


@dataclass
class Source:
    views: list[PluginView] = field(default_factory=list)

    def plugin_views(self) -> list[PluginView]:
        return self.views

    def daemon_stats(self) -> DaemonStats:
        return DaemonStats()


def _plugins(n: int) -> list[PluginView]:
    views = []
    for i in range(n):
        stats = PluginStats()
        stats.calls[("handle", "ok")] += i
        stats.call_duration.observe(0.001)
        views.append(PluginView(f"plugin-{i}", "1.0.0", f"{i:064x}", "running", 65536, stats))
    return views


def _lateness(seconds: float) -> list[float]:
    """Run a fixed-period loop doing a little work; return how late each tick woke, sorted."""
    late = []
    start = time.monotonic()
    wake = threading.Event()
    for tick in range(1, int(seconds / PERIOD) + 1):
        sum(range(2000))  # the loop's own periodic work
        due = start + tick * PERIOD
        wake.wait(max(0.0, due - time.monotonic()))
        late.append(time.monotonic() - due)
    return sorted(late)


def _p95(late: list[float]) -> float:
    return late[int(len(late) * 0.95)]


def test_scrape_flood_keeps_the_loop_on_pace() -> None:
    server = MetricsServer("127.0.0.1:0", Source(_plugins(1000)), min_interval_s=1.0)
    server.start()
    try:
        quiet = _lateness(2.0)
        renders_before, served_before = server.renders, server.served
        t0 = time.monotonic()
        flood = subprocess.Popen(
            [
                "nice",
                "-n",
                "19",
                sys.executable,
                "-c",
                FLOOD,
                f"http://127.0.0.1:{server.port}/metrics",
                "3",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        loaded = _lateness(3.0)
        out, _ = flood.communicate(timeout=60)
        elapsed = time.monotonic() - t0
        scrapes = int(out.strip())
        renders = server.renders - renders_before
        served = server.served - served_before
    finally:
        server.close()
    figures = (_p95(quiet), _p95(loaded), quiet[-1], loaded[-1], scrapes)
    assert scrapes > 20  # it really was a flood
    assert renders <= 3 / 1.0 + 2  # collected at most once per interval, not per scrape
    assert scrapes > 2 * served  # demand far above what is served...
    assert served <= 10 * elapsed + 10  # ...which stays at most 10/s + the burst
    # Relative to the loop itself: its usual lateness (p95) stays within 4x its quiet p95
    # or half a period, and its worst tick within 4x its quiet worst or 5 periods (the
    # shared 2-core machine alone causes tens of ms of scheduling hiccups under load).
    assert _p95(loaded) <= max(4 * _p95(quiet), PERIOD / 2), figures
    assert loaded[-1] <= max(4 * quiet[-1], 5 * PERIOD), figures
