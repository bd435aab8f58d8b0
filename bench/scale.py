"""1,000 small signed plugins: time to READY=1 (cold and warm compile cache), daemon RSS and CPU.

Runs the real ``python -m forgeoned.daemon`` (one process per measurement) with a
``NOTIFY_SOCKET`` of our own and times from ``Popen`` to the ``READY=1`` datagram. RSS is
``VmRSS`` of the daemon right after READY=1; "per idle plugin" is (RSS with N plugins - RSS
with 0 plugins) / N. Each plugin is a distinct module (its own code hash), one instance.
"Daemon CPU" is the process's user + system time up to READY=1: on a shared machine it varies
far less than the wall-clock time, so it is the figure to compare.

- cold: empty state and compile cache;
- warm cache: the compile cache of the cold run, empty state (every plugin is a new install);
- restart: cache and state of the previous run (the persisted set is restored).

``--tree NAME=PATH`` (repeatable) compares code trees in one run: the daemon runs with
``PYTHONPATH=PATH``, every tree on its own copy of the same plugins, cache and state; after
one cold start each, ``--rounds`` rounds of (warm, restart) alternate between the trees (the
order reversed every other round) and the medians are reported.

``--bytecode`` runs the daemons as the package does (its postinst compiles every module):
with bytecode files, kept under a scratch ``PYTHONPYCACHEPREFIX`` (written by each tree's
first start, so the cold figures include compiling). Without it the daemon inherits the
environment: with ``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__`` in the checkout,
every start compiles forgeoned's ~160 modules from source (≈0.17 s of CPU).

Run: ``.venv/bin/python bench/scale.py [--plugins 1000] [--tree old=/x --tree new=.]
[--bytecode] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon_common import layout, module, scratch, signed

REPO = Path(__file__).resolve().parents[1]

Probe = Callable[[int], dict[str, Any]]
During = Callable[[Path, int], dict[str, Any]]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time the process used so far, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def start_to_ready(
    root: Path,
    config: Path,
    env: dict[str, str] | None = None,
    probe: Probe | None = None,
    during: During | None = None,
) -> dict[str, Any]:
    """Start a daemon, wait for READY=1, measure, run ``during(root, pid)``, stop it.

    The daemon runs this checkout's code unless ``env`` names another ``PYTHONPATH``; its
    working directory is ``root``, since ``python -m`` puts the working directory first on
    ``sys.path`` (started from a checkout, it would run that checkout whatever PYTHONPATH)."""
    path = root / "run" / "notify.sock"
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(1200)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "forgeoned.daemon", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {}), "NOTIFY_SOCKET": str(path)},
        cwd=root,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            msg = sock.recv(4096).decode()
            if "READY=1" in msg.splitlines():
                break
        ready_s = time.monotonic() - t0
        status = next(x for x in msg.splitlines() if x.startswith("STATUS="))
        user, system = cpu_times(proc.pid)
        result = {
            "ready_s": round(ready_s, 3),
            "cpu_s": round(user + system, 2),
            "user_s": round(user, 2),
            "sys_s": round(system, 2),
            "rss_kib": rss_kib(proc.pid),
            "status": status[7:],
            "load1": round(os.getloadavg()[0], 1),
        }
        if probe is not None:
            result["memory"] = probe(proc.pid)
        if during is not None:
            result.update(during(root, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
        sock.close()
    return result


def write_plugins(plugins: Path, n: int) -> None:
    for i in range(n):
        name = f"p{i:04d}"
        (plugins / f"{name}.wasm").write_bytes(signed(name, "1.0.0", module(f"{name}@1.0.0")))


def single(n: int) -> dict[str, Any]:
    """The classic run of one tree: empty, cold, warm, restart."""
    with scratch() as root:
        config = layout(root)
        baseline = start_to_ready(root, config)
        write_plugins(root / "plugins.d", n)
        shutil.rmtree(root / "state")
        cold = start_to_ready(root, config)
        shutil.rmtree(root / "state")
        warm = start_to_ready(root, config)
        restart = start_to_ready(root, config)
    return {
        "empty_daemon": baseline,
        "cold_cache": cold,
        "warm_cache": warm,
        "restart_persisted": restart,
        "rss_per_idle_plugin_kib": round((warm["rss_kib"] - baseline["rss_kib"]) / n, 1),
    }


def compare(
    n: int, trees: dict[str, str], rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Interleaved runs of several trees on identical plugin sets; medians per tree."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with scratch() as base:
        write_plugins(base, n)
        roots = {}
        for name in trees:
            root = roots[name] = base / f"tree-{name}"
            layout(root)
            shutil.rmtree(root / "plugins.d")
            shutil.copytree(base, root / "plugins.d", ignore=shutil.ignore_patterns("tree-*"))
            shutil.rmtree(root / "state")
        for name, tree in trees.items():
            cold = start_to_ready(
                roots[name], roots[name] / "etc/forgeoned.toml", {"PYTHONPATH": tree}
            )
            runs[name] = {"cold": [cold], "warm": [], "restart": []}
            log(f"{name:>10} cold     {_line(cold)}")
        for r in range(rounds):
            order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
            for kind in ("warm", "restart"):
                for name, tree in order:
                    root = roots[name]
                    if kind == "warm":
                        shutil.rmtree(root / "state")
                    one = start_to_ready(root, root / "etc/forgeoned.toml", {"PYTHONPATH": tree})
                    runs[name][kind].append(one)
                    log(f"{name:>10} {kind:<8} {_line(one)}")
    return {
        name: {kind: _median(xs) for kind, xs in kinds.items()} | {"runs": kinds}
        for name, kinds in runs.items()
    }


def _line(r: dict[str, Any]) -> str:
    return (
        f"CPU {r['cpu_s']:.2f}s (user {r['user_s']:.2f}, sys {r['sys_s']:.2f}), "
        f"READY {r['ready_s']:.2f}s, RSS {r['rss_kib'] / 1024:.1f} MiB, load {r['load1']}"
    )


def _median(xs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("cpu_s", "user_s", "sys_s", "ready_s", "rss_kib", "load1")
    out = {k: round(statistics.median(x[k] for x in xs), 3) for k in keys}
    out["cpu_s_min"] = min(x["cpu_s"] for x in xs)
    out["cpu_s_max"] = max(x["cpu_s"] for x in xs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=1000)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bytecode", action="store_true", help="start from .pyc files")
    args = parser.parse_args()
    if args.bytecode:
        with tempfile.TemporaryDirectory(prefix="forgeoned-bench-pyc-") as pyc:
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ["PYTHONPYCACHEPREFIX"] = pyc  # the daemons inherit os.environ
            return run(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    n = args.plugins
    say = (lambda s: None) if args.json else (lambda s: print(s, flush=True))
    if args.tree:
        trees = {k: os.path.abspath(v) for k, _, v in (t.partition("=") for t in args.tree)}
        result: dict[str, Any] = {
            "plugins": n,
            "cpus": os.cpu_count(),
            "trees": compare(n, trees, args.rounds, say),
        }
        if args.json:
            print(json.dumps(result, indent=1))
            return 0
        print(f"medians of {args.rounds} rounds, {n} plugins, {os.cpu_count()} CPUs")
        for name, kinds in result["trees"].items():
            for kind in ("warm", "restart"):
                m = kinds[kind]
                print(
                    f"  {name:>10} {kind:<8} CPU {m['cpu_s']:.2f}s "
                    f"({m['cpu_s_min']:.2f}-{m['cpu_s_max']:.2f}; user {m['user_s']:.2f}, "
                    f"sys {m['sys_s']:.2f}), READY {m['ready_s']:.2f}s, "
                    f"RSS {m['rss_kib'] / 1024:.1f} MiB, load {m['load1']}"
                )
        return 0
    result = {
        "plugins": n,
        "cpus": os.cpu_count(),
        **single(n),
        "targets": {"warm_cpu_s": 2.0, "restart_cpu_s": 0.8, "rss_per_idle_plugin_kib": 200},
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{n} plugins, {os.cpu_count()} CPUs")
        rows = (
            ("empty daemon", result["empty_daemon"]),
            ("cold cache", result["cold_cache"]),
            ("warm cache", result["warm_cache"]),
            ("restart", result["restart_persisted"]),
        )
        for label, r in rows:
            print(f"  {label:<20} {_line(r)}")
        print(f"  RSS per idle plugin: {result['rss_per_idle_plugin_kib']:.1f} KiB (target <= 200)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
