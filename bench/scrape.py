"""``/metrics`` scrape time with 1,000 plugins (about 37,000 samples).

Measures, in one run:

- ``forgeoned /metrics over HTTP``: a real GET against :class:`MetricsServer` (cache off), i.e.
  collection from live stats + rendering + HTTP;
- ``collect + render_text``: the same without HTTP, in wall and in thread CPU time (on a
  shared machine, time spent waiting for a core is not a cost of the scrape);
- ``prometheus_client generate_latest``: the same collector rendered by prometheus_client's
  generic exposition code, the peer the direct renderer replaces.

Each figure is the best of ``--rounds`` rounds (median in parentheses), milliseconds.
Run: ``.venv/bin/python bench/scrape.py [--plugins N] [--rounds R] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from forgeoned.adapters.metrics.model import StaticSource
from forgeoned.adapters.metrics.server import ForgeonedCollector, MetricsServer, render_text
from forgeoned.core.stats import PluginStats, PluginView


def _source(n: int) -> StaticSource:
    source = StaticSource()
    for i in range(n):
        stats = PluginStats()
        for export, outcome in (("handle", "ok"), ("handle", "out_of_fuel"), ("init", "ok")):
            stats.calls[(export, outcome)] += 100 + i
        for func in ("log", "kv_get", "kv_set", "time_now_ms"):
            stats.hostcalls[(func, "ok")] += 10 + i
        stats.hostcalls[("secret_get", "denied")] += 1
        for k in range(20):
            stats.call_duration.observe(0.00001 * (k + 1) * (i % 7 + 1))
        stats.fuel_consumed = 1_000_000 * i
        view = PluginView(f"plugin-{i:04d}", "1.2.3", f"{i:064x}", "running", 1 << 20, stats)
        source.views.append(view)
        source.stats.swaps[(view.name, "upgraded")] += 1
    return source


def _measure(fn: Callable[[], object], rounds: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(rounds):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    source = _source(args.plugins)
    collector = ForgeonedCollector(source)
    registry = CollectorRegistry()
    registry.register(collector)
    body = render_text(collector.model.families())
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    server = MetricsServer("127.0.0.1:0", source, min_interval_s=0.0, max_scrapes_per_s=1e6)
    server.start()
    url = f"http://127.0.0.1:{server.port}/metrics"

    def http_get() -> None:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()

    try:
        http_wall, _ = _measure(http_get, args.rounds)
        fast_wall, fast_cpu = _measure(lambda: render_text(collector.model.families()), args.rounds)
        ref_wall, ref_cpu = _measure(lambda: generate_latest(registry), args.rounds)
    finally:
        server.close()
    results = {
        "samples": samples,
        "bytes": len(body),
        "http_get_ms": {"best": min(http_wall), "median": statistics.median(http_wall)},
        "render_wall_ms": {"best": min(fast_wall), "median": statistics.median(fast_wall)},
        "render_cpu_ms": {"best": min(fast_cpu), "median": statistics.median(fast_cpu)},
        "generate_latest_wall_ms": {"best": min(ref_wall), "median": statistics.median(ref_wall)},
        "generate_latest_cpu_ms": {"best": min(ref_cpu), "median": statistics.median(ref_cpu)},
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.plugins} plugins, {samples} samples, {len(body) / 1e6:.1f} MB per scrape")
    for key in list(results)[2:]:
        figures = results[key]
        assert isinstance(figures, dict)
        print(f"  {key:26s} {figures['best']:7.1f} ms  ({figures['median']:.1f})")
    best = results["http_get_ms"]
    assert isinstance(best, dict)
    print(f"target <= 100 ms per scrape: {'met' if best['best'] <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
