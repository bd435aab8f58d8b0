"""A real forgeoned process for the daemon tests: signed inline-WAT plugins, a config in a
temporary directory, a NOTIFY_SOCKET to see READY=1, and the control client to talk to it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abi_wat import ALLOC, lifecycle_exports
from waiting import poll_until

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli.devtools import make_signed_plugin, package_plugin, test_key
from forgeoned.core.events import AuditEvent

KEY = test_key(7)
REPO = Path(__file__).resolve().parents[2]


def plugin_wat(
    tag: str,
    *,
    init: int = 0,
    start: int = 0,
    handle_extra: str = "",
    tick: bool = False,
) -> str:
    """A plugin whose ``handle`` outputs ``tag + ":" + input``."""
    text = (tag + ":").encode()
    data = "".join(f"\\{b:02x}" for b in text)
    tick_fn = '(func (export "tick") (result i32) i32.const 0)' if tick else ""
    return f"""(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{data}")
  {lifecycle_exports({"init": f"i32.const {init}", "start": f"i32.const {start}"})}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32)
    {handle_extra}
    (drop (call $output (i32.const 16) (i32.const {len(text)})))
    (drop (call $output (local.get $p) (local.get $l)))
    i32.const 0)
  {tick_fn})"""


def spin(iterations: int) -> str:
    """A ``handle`` prologue that busy-loops (reuses the ``$l`` parameter; echoes nothing)."""
    return f"""(local.set $l (i32.const {iterations}))
    (block $done (loop $again
      (br_if $done (i32.eqz (local.get $l)))
      (local.set $l (i32.sub (local.get $l) (i32.const 1)))
      (br $again)))"""


# A ``handle`` prologue that never ends by itself: only the host stops it (a drain's
# interrupt, the deadline), whatever the CPU speed.
SPIN_FOREVER = "(loop $forever (br $forever))"
SLOW_LIMITS = {"fuel_per_call": 10**12, "call_timeout_ms": 600_000}


def manifest(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "abi": 1, **extra}


def plugin(
    name: str,
    version: str,
    *,
    signed: bool = True,
    limits: dict[str, int] | None = None,
    **wat: Any,
) -> bytes:
    text = plugin_wat(f"{name}@{version}", **wat)
    m = manifest(name, version, capabilities={"log": True}, limits=limits or {})
    return make_signed_plugin(text, m, KEY) if signed else package_plugin(text, m)


def drop(plugins_dir: Path, filename: str, data: bytes) -> Path:
    """Write next to the target and rename in, as an operator's deploy tool does."""
    tmp = plugins_dir / f".{filename}.tmp"
    tmp.write_bytes(data)
    target = plugins_dir / filename
    tmp.rename(target)
    return target


@dataclass
class Env:
    root: Path
    mode: str = "production"
    extra: str = ""
    journald: bool = False
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        for d in ("plugins.d", "trusted.d", "state", "cache", "run", "etc"):
            (self.root / d).mkdir(exist_ok=True)
        (self.root / "trusted.d/test.pub").write_bytes(public_key_bytes(KEY.public_key))
        self.config = self.root / "etc/forgeoned.toml"
        self.write_config()

    def write_config(self, extra: str | None = None, audit: str = "") -> None:
        """Rewrite the config; ``extra`` goes at top level, ``audit`` into [audit]."""
        if extra is not None:
            self.extra = extra
        self.config.write_text(
            f"""mode = "{self.mode}"
plugins_dir = "plugins.d"
state_dir = "state"
trust_dir = "trusted.d"
cache_dir = "cache"
drain_timeout_s = 2.0
rescan_interval_s = 30
debounce_ms = 20
{self.extra}
[control]
socket = "run/control.sock"
[metrics]
enabled = false
[audit]
journald = {"true" if self.journald else "false"}
{audit}
"""
        )

    @property
    def plugins(self) -> Path:
        return self.root / "plugins.d"

    @property
    def socket(self) -> str:
        return str(self.root / "run/control.sock")

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.root / "state/state.json").read_text())
        return state

    def audit_events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in sorted((self.root / "state/audit").glob("audit*.jsonl")):
            out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return out


class Daemon:
    """``python -m forgeoned.daemon`` in a subprocess, with its notify datagrams collected."""

    def __init__(
        self, env: Env, extra_env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
    ) -> None:
        self.env = env
        self.notify_path = env.root / "run" / f"notify-{time.monotonic_ns()}.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.messages: list[str] = []
        penv = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **(extra_env or {})}
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "forgeoned.daemon", "--config", str(env.config)],
            env=penv,
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        """Wait for a notify datagram containing a line starting with ``prefix``."""
        deadline = time.monotonic() + timeout
        for msg in self.messages:
            if any(line.startswith(prefix) for line in msg.splitlines()):
                return msg
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.stderr()}")
            self.notify.settimeout(min(0.5, max(0.01, deadline - time.monotonic())))
            try:
                msg = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(msg)
            if any(line.startswith(prefix) for line in msg.splitlines()):
                return msg
        raise AssertionError(f"no {prefix} within {timeout}s; got {self.messages}")

    def ready(self, timeout: float = 60.0) -> str:
        return self.wait_for("READY=1", timeout)

    def client(self) -> ControlClient:
        return ControlClient(self.env.socket, timeout=60)

    def invoke(self, name: str, data: bytes = b"x") -> bytes:
        with self.client() as c:
            return c.invoke(name, data)

    def status(self) -> dict[str, dict[str, Any]]:
        with self.client() as c:
            return {p["name"]: p for p in c.list_plugins()}

    def wait_until(self, predicate: Any, timeout: float = 30.0, what: str = "") -> None:
        """Poll the daemon's status (bounded) until ``predicate(status)`` holds."""

        def probe() -> dict[str, dict[str, Any]] | None:
            self._collect_notify()
            status = self.status()
            return status if predicate(status) else None

        poll_until(probe, timeout, what or "the daemon's status", interval=0.02)

    def _collect_notify(self) -> None:
        """Keep the notify datagrams that arrived meanwhile (``wait_for`` looks at them)."""
        self.notify.setblocking(False)
        try:
            while True:
                self.messages.append(self.notify.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.notify.setblocking(True)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None or self.proc.stderr.closed:
            return ""
        return self.proc.stderr.read()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.close()

    def close(self) -> None:
        self.notify.close()
        self.notify_path.unlink(missing_ok=True)
        if self.proc.stderr:
            self.proc.stderr.close()


class JumpClock:
    """The real clock plus an offset a test can jump forward: time flows as usual (debounce
    and settle delays pass by themselves), and ``advance`` stands in for a long wait."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def wall(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


@contextlib.contextmanager
def in_process(
    env: Env, timeout: float = 60.0, clock: JumpClock | None = None
) -> Iterator[InProcess]:
    """A daemon running on a thread of the test process (no signals, no notify socket)."""
    from forgeoned.daemon.config_file import load_config
    from forgeoned.daemon.run import Daemon as RealDaemon

    waiter = EventWaiter()
    daemon = RealDaemon(load_config(env.config), clock, observer=waiter.record)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:
            errors.append(exc)
            daemon.ready.set()

    thread = threading.Thread(target=run, name="test-daemon")
    thread.start()
    assert daemon.ready.wait(timeout), "daemon did not become ready"
    if errors:
        raise errors[0]
    try:
        yield InProcess(daemon, env, waiter)
    finally:
        daemon.loop.post(daemon.stop)
        thread.join(timeout)
        assert not thread.is_alive(), "daemon did not stop"


class EventWaiter:
    """Told of every audit event the daemon records; lets a test wait for them (bounded)."""

    def __init__(self) -> None:
        self.seen: list[AuditEvent] = []
        self.cond = threading.Condition()
        self.fail_after: str | None = None  # an event label: raise once it is recorded

    def record(self, event: AuditEvent) -> None:
        if event.event.label == self.fail_after:
            raise RuntimeError(f"failing on purpose after {self.fail_after}")
        with self.cond:
            self.seen.append(event)
            self.cond.notify_all()

    def wait(self, label: str, plugin: str | None = None, count: int = 1, timeout: float = 30.0,
             **fields: str) -> list[AuditEvent]:  # fmt: skip
        def matching() -> list[AuditEvent]:
            return [
                e for e in self.seen
                if e.event.label == label and (plugin is None or e.plugin == plugin)
                and all(getattr(e, k) == v for k, v in fields.items())
            ]  # fmt: skip

        with self.cond:
            if not self.cond.wait_for(lambda: len(matching()) >= count, timeout):
                labels = [(e.event.label, e.plugin, e.version, e.reason) for e in self.seen]
                raise AssertionError(f"no {count}x {label} {plugin} {fields}: {labels}")
            return matching()

    def labels(self, plugin: str | None = None) -> list[str]:
        with self.cond:
            return [e.event.label for e in self.seen if plugin is None or e.plugin == plugin]


@dataclass
class InProcess:
    daemon: Any
    env: Env
    events: EventWaiter

    @property
    def parts(self) -> Any:
        """The daemon's components (``forgeoned.daemon.parts.Parts``)."""
        return self.daemon.parts

    def sync(self) -> None:
        """Let the loop process everything the watcher already reported, then rescan."""
        self.daemon.loop.call(self.daemon.rescan)

    def invoke(self, name: str, data: bytes = b"x", wait_s: float | None = None) -> bytes:
        out: bytes = self.daemon.backend.invoke(name, data, wait_s)
        return out

    def view(self, name: str) -> Any:
        return self.daemon.backend.get_plugin(name)
