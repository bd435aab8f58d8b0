"""The daemon under load and bursts: continuous calls through swaps, 5,000 files at once,
a trapping version under load, and an unreadable file (daemon running unprivileged)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import wasmtime
from daemon_kit import KEY, Daemon, Env, drop, in_process, plugin, plugin_wat

from forgeoned.cli.devtools import package_plugin, sign_bytes
from forgeoned.core.lifecycle import State
from forgeoned.errors import ForgeonedError


class Caller:
    """Calls ``handle`` continuously from a few threads and keeps every outcome."""

    def __init__(self, invoke: object, name: str, threads: int = 3) -> None:
        self.invoke = invoke
        self.name = name
        self.ok: list[bytes] = []
        self.failed: list[Exception] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                out = self.invoke(self.name, b"q")  # type: ignore[operator]
            except ForgeonedError as exc:
                with self.lock:
                    self.failed.append(exc)
                continue
            with self.lock:
                self.ok.append(out)

    def __enter__(self) -> Caller:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_swaps_under_continuous_calls_lose_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d, Caller(d.invoke, "hello") as caller:
        for minor in range(1, 6):
            drop(env.plugins, "hello.wasm", plugin("hello", f"1.{minor}.0"))
            d.events.wait("plugin.upgraded", "hello", version=f"1.{minor}.0")
        answered_before_stop = len(caller.ok)
    assert caller.failed == []
    assert answered_before_stop > 0
    versions = {out.split(b":")[0] for out in caller.ok}
    assert versions <= {f"hello@1.{m}.0".encode() for m in range(6)}
    assert b"hello@1.5.0" in versions


def test_new_version_that_traps_under_load(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write_config("[restart]\nmax_failures = 3\nbackoff_initial_s = 0.01\njitter = 0")
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    drop(env.plugins, "other.wasm", plugin("other", "1.0.0"))
    with in_process(env) as d, Caller(d.invoke, "hello") as caller:
        drop(env.plugins, "hello.wasm", plugin("hello", "2.0.0", handle_extra="unreachable"))
        d.events.wait("plugin.quarantined", "hello")
        assert d.parts.plugins.host("hello").wait_for(State.QUARANTINED, 10)
        assert d.invoke("other") == b"other@1.0.0:x"  # other plugins are unaffected
    assert d.view("hello").state == "quarantined"
    # every call got an answer or a clear error; no answer ever came from the trapping code
    assert all(out == b"hello@1.0.0:q" for out in caller.ok)
    reasons = {type(e).__name__ for e in caller.failed}
    assert reasons <= {"PluginTrap", "UnavailableError"}
    assert "PluginTrap" in reasons


@pytest.fixture
def burst_env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_a_burst_of_5000_files(burst_env: Env) -> None:
    env = burst_env
    module = bytes(wasmtime.wat2wasm(plugin_wat("burst")))
    drop(env.plugins, "burst-0.wasm", plugin("burst", "0.0.1"))
    with in_process(env) as d:
        for i in range(5000):
            manifest = {"name": "burst", "version": f"1.0.{i}", "abi": 1}
            drop(
                env.plugins,
                f"burst-{i:04d}.wasm",
                sign_bytes(package_plugin(module, manifest), KEY),
            )
        d.sync()  # whatever inotify dropped, a rescan reconciles
        d.events.wait("plugin.upgraded", "burst", version="1.0.4999", timeout=120)
        assert d.view("burst").version == "1.0.4999"
        assert len(d.parts.directory.entries) == 5001
        assert "plugin.rejected" not in d.events.labels()
        assert env.state()["active"]["burst"]["version"] == "1.0.4999"


# root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file modes apply to it as to anyone
NO_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")


def test_an_unreadable_file_is_rejected_and_loads_once_readable(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "ok.wasm", plugin("ok", "1.0.0"))
    secret = env.plugins / "secret.wasm"
    secret.write_bytes(plugin("secret", "1.0.0"))
    secret.chmod(0o000)
    d = Daemon(env, prefix=NO_DAC)
    try:
        d.ready()
        assert set(d.status()) == {"ok"}
        rejected = [e for e in env.audit_events() if e["event"] == "plugin.rejected"]
        assert [e["reason"] for e in rejected] == ["unreadable"]
        assert "permission denied" in rejected[0]["message"]
        assert secret.read_bytes()  # (root) the file itself is untouched
        secret.chmod(0o644)
        d.wait_until(lambda s: s.get("secret", {}).get("state") == "running", what="secret up")
        assert d.invoke("secret") == b"secret@1.0.0:x"
        assert d.invoke("ok") == b"ok@1.0.0:x"
    finally:
        d.stop()
