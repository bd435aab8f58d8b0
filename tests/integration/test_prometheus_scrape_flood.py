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
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
            count[0] += 1
        except OSError:
            pass
threads = [threading.Thread(target=hammer) for _ in range(8)]
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


def _max_lateness(seconds: float) -> float:
    """Run a fixed-period loop doing a little work; return its worst lateness."""
    worst = 0.0
    start = time.monotonic()
    ticks = int(seconds / PERIOD)
    wake = threading.Event()
    for tick in range(1, ticks + 1):
        sum(range(2000))  # the loop's own periodic work
        due = start + tick * PERIOD
        wake.wait(max(0.0, due - time.monotonic()))
        worst = max(worst, time.monotonic() - due)
    return worst


def test_scrape_flood_keeps_the_loop_on_pace() -> None:
    server = MetricsServer("127.0.0.1:0", Source(_plugins(1000)), min_interval_s=1.0)
    server.start()
    try:
        baseline = _max_lateness(2.0)
        renders_before = server.renders
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
        under_flood = _max_lateness(3.0)
        out, _ = flood.communicate(timeout=60)
        scrapes = int(out.strip())
        renders = server.renders - renders_before
    finally:
        server.close()
    assert scrapes > 20  # it really was a flood
    assert renders <= 3 / 1.0 + 2  # collected at most once per interval, not per scrape
    # the loop never falls more than a couple of its own periods (or 4x its quiet jitter) behind
    assert under_flood <= max(4 * baseline, 2 * PERIOD), (baseline, under_flood, scrapes)
