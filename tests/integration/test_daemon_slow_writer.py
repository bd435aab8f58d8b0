"""A file still being written is never rejected for being half-written: it is judged once it
is closed (or once its writer stayed quiet for the watcher's write grace)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from daemon_kit import Env, InProcess, drop, in_process, plugin


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    drop(e.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    return e


def _wait_held(d: InProcess, name: str, timeout: float = 10.0) -> None:
    """Bounded wait until the daemon has read ``name`` half-written and held it."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        if d.daemon.loop.call(lambda: name in d.daemon.directory.held):
            return
        tick.wait(0.01)
    raise AssertionError(f"{name} was not held within {timeout}s")


def test_a_writer_pausing_past_the_settle_time_causes_no_rejection(env: Env) -> None:
    data = plugin("hello", "2.0.0")
    with in_process(env) as d:
        d.daemon.watcher.settle_s = 0.05  # so that the pause below is "long"
        with (env.plugins / "hello.wasm").open("wb") as f:  # rewritten in place, slowly
            f.write(data[: len(data) // 2])
            f.flush()
            _wait_held(d, "hello.wasm")  # read while half-written, during the pause
            assert d.invoke("hello") == b"hello@1.0.0:x"  # the old version keeps serving
            f.write(data[len(data) // 2 :])
        d.events.wait("plugin.upgraded", "hello", version="2.0.0")
        assert d.invoke("hello") == b"hello@2.0.0:x"
        assert "plugin.rejected" not in d.events.labels()
        assert sum(d.daemon.stats.rejected.values()) == 0
        assert not d.daemon.directory.held


def test_a_half_written_file_that_was_closed_is_rejected(env: Env) -> None:
    data = plugin("hello", "2.0.0")
    with in_process(env) as d:
        path = env.plugins / "hello-2.wasm"
        with path.open("wb") as f:
            f.write(data[: len(data) // 2])
        [event] = d.events.wait("plugin.rejected")
        assert event.details == {"file": "hello-2.wasm"}
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert env.state()["active"]["hello"]["version"] == "1.0.0"


def test_a_writer_quiet_for_the_write_grace_gets_its_file_judged(env: Env) -> None:
    data = plugin("hello", "2.0.0")
    with in_process(env) as d:
        d.daemon.watcher.settle_s = 0.05
        with (env.plugins / "hello-2.wasm").open("wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            _wait_held(d, "hello-2.wasm")
            d.daemon.watcher.write_grace_s = 0.0  # as if it stayed open and quiet that long
            d.sync()  # the periodic rescan
            [event] = d.events.wait("plugin.rejected")
            assert event.details == {"file": "hello-2.wasm"}
        assert d.invoke("hello") == b"hello@1.0.0:x"
