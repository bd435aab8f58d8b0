"""Shared pieces of the daemon benchmarks: signed inline-WAT plugins, a scratch layout with a
config, and an in-process daemon (the same code ``forgeoned`` runs, on a thread)."""

from __future__ import annotations

import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import wasmtime

from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli.devtools import package_plugin, sign_bytes, test_key
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.run import Daemon

KEY = test_key(11)


def module(tag: str) -> bytes:
    """A small ABI v1 module whose ``handle`` outputs ``tag:`` then its input."""
    text = (tag + ":").encode()
    data = "".join(f"\\{b:02x}" for b in text)
    wat = f"""(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{data}")
  (func (export "init") (result i32) i32.const 0)
  (func (export "start") (result i32) i32.const 0)
  (func (export "stop") (result i32) i32.const 0)
  (func (export "pause") (result i32) i32.const 0)
  (func (export "resume") (result i32) i32.const 0)
  (func (export "unload") (result i32) i32.const 0)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "handle") (param $p i32) (param $l i32) (result i32)
    (drop (call $output (i32.const 16) (i32.const {len(text)})))
    (drop (call $output (local.get $p) (local.get $l)))
    i32.const 0))"""
    return bytes(wasmtime.wat2wasm(wat))


def signed(name: str, version: str, code: bytes | None = None) -> bytes:
    manifest = {"name": name, "version": version, "abi": 1, "capabilities": {"log": True}}
    return sign_bytes(package_plugin(code or module(f"{name}@{version}"), manifest), KEY)


def rename_in(plugins: Path, filename: str, data: bytes) -> None:
    tmp = plugins / f".{filename}.part"
    tmp.write_bytes(data)
    tmp.rename(plugins / filename)


def layout(root: Path, extra: str = "", metrics: bool = False) -> Path:
    for d in ("plugins.d", "trusted.d", "state", "cache", "run", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "trusted.d/bench.pub").write_bytes(public_key_bytes(KEY.public_key))
    config = root / "etc/forgeoned.toml"
    config.write_text(
        f"""mode = "production"
plugins_dir = "plugins.d"
state_dir = "state"
trust_dir = "trusted.d"
cache_dir = "cache"
rescan_interval_s = 3600
{extra}
[control]
socket = "run/control.sock"
[metrics]
enabled = {"true" if metrics else "false"}
listen = "127.0.0.1:0"
[audit]
journald = false
"""
    )
    return config


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="forgeoned-bench-") as d:
        yield Path(d)


@contextmanager
def in_process(config: Path) -> Iterator[Daemon]:
    daemon = Daemon(load_config(config))
    thread = threading.Thread(target=daemon.run, name="bench-daemon")
    thread.start()
    if not daemon.ready.wait(600):
        raise RuntimeError("daemon did not become ready")
    try:
        yield daemon
    finally:
        daemon.loop.post(daemon.stop)
        thread.join(120)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }
