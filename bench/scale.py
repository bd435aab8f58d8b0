"""1,000 small signed plugins: time to READY=1 (cold and warm compile cache), daemon RSS.

Runs the real ``python -m forgeoned.daemon`` (one process per measurement) with a
``NOTIFY_SOCKET`` of our own and times from ``Popen`` to the ``READY=1`` datagram. RSS is
``VmRSS`` of the daemon right after READY=1; "per idle plugin" is (RSS with N plugins - RSS
with 0 plugins) / N. Each plugin is a distinct module (its own code hash), one instance.

- cold: empty state and compile cache;
- warm cache: the compile cache of the cold run, empty state (every plugin is a new install);
- restart: cache and state of the previous run (the persisted set is restored).

Run: ``.venv/bin/python bench/scale.py [--plugins 1000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon_common import layout, module, scratch, signed


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """CPU time (user + system) the process used so far: on a shared machine this varies
    far less than the wall-clock time to READY=1."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_to_ready(root: Path, config: Path) -> dict[str, Any]:
    path = root / "run" / "notify.sock"
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(600)
    env = {**os.environ, "NOTIFY_SOCKET": str(path)}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "forgeoned.daemon", "--config", str(config)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            msg = sock.recv(4096).decode()
            if "READY=1" in msg.splitlines():
                break
        ready_s = time.monotonic() - t0
        status = next(x for x in msg.splitlines() if x.startswith("STATUS="))
        rss = rss_kib(proc.pid)
        cpu = cpu_s(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
        sock.close()
    return {"ready_s": round(ready_s, 3), "cpu_s": round(cpu, 2), "rss_kib": rss,
            "status": status[7:], "load1": round(os.getloadavg()[0], 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.plugins
    with scratch() as root:
        config = layout(root)
        baseline = start_to_ready(root, config)
        for i in range(n):
            name = f"p{i:04d}"
            (root / "plugins.d" / f"{name}.wasm").write_bytes(
                signed(name, "1.0.0", module(f"{name}@1.0.0"))
            )
        shutil.rmtree(root / "state")
        cold = start_to_ready(root, config)
        shutil.rmtree(root / "state")
        warm = start_to_ready(root, config)
        restart = start_to_ready(root, config)
    per_plugin = (warm["rss_kib"] - baseline["rss_kib"]) / n
    result = {
        "plugins": n,
        "cpus": os.cpu_count(),
        "empty_daemon": baseline,
        "cold_cache": cold,
        "warm_cache": warm,
        "restart_persisted": restart,
        "rss_per_idle_plugin_kib": round(per_plugin, 1),
        "targets": {"warm_ready_s": 3.0, "rss_per_idle_plugin_kib": 200},
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{n} plugins, {os.cpu_count()} CPUs")
        rows = (("empty daemon", baseline), ("cold cache", cold), ("warm cache", warm),
                ("restart", restart))  # fmt: skip
        for label, r in rows:
            print(f"  {label:<20} READY in {r['ready_s']:.2f}s (daemon CPU {r['cpu_s']:.2f}s, "
                  f"load {r['load1']}), RSS {r['rss_kib'] / 1024:.1f} MiB")  # fmt: skip
        print(f"  RSS per idle plugin: {per_plugin:.1f} KiB (target <= 200)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
