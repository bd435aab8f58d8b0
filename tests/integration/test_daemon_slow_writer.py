"""A file still being written is never rejected for being half-written: it is judged once it
is closed and not reopened soon after (or once its writer stayed quiet for the watcher's write
grace). Issue 12 item 7: a writer that reopens the file for every chunk caused one spurious
``plugin.rejected malformed`` per chunk."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from daemon_kit import Env, InProcess, JumpClock, drop, in_process, plugin

from forgeoned.adapters.files.changes import WRITE_GRACE_S


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    drop(e.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    return e


class Reports:
    """Sits in front of the daemon's watcher callback so a test can wait for a report."""

    def __init__(self, d: InProcess) -> None:
        self.d = d
        self.inner = d.parts.watcher.on_changes
        self.seen: list[set[str]] = []
        self.cond = threading.Condition()
        d.parts.watcher.on_changes = self

    def __call__(self, names: set[str]) -> None:
        self.inner(names)  # posts the change to the daemon's loop
        with self.cond:
            self.seen.append(names)
            self.cond.notify_all()

    def count(self) -> int:
        with self.cond:
            return len(self.seen)

    def wait_read(self, name: str, after: int, timeout: float = 10.0) -> None:
        """Wait for a report of ``name`` after the first ``after`` ones, and for the daemon
        to have read it (its loop runs posted work in order)."""
        with self.cond:
            ok = self.cond.wait_for(lambda: any(name in b for b in self.seen[after:]), timeout)
        assert ok, f"{name} not reported: {self.seen}"
        self.d.daemon.loop.call(lambda: None)

    def held(self, name: str) -> bool:
        return bool(self.d.daemon.loop.call(lambda: name in self.d.parts.directory.held))


def test_a_writer_pausing_past_the_settle_time_causes_no_rejection(env: Env) -> None:
    data = plugin("hello", "2.0.0")
    with in_process(env) as d:
        reports = Reports(d)
        d.parts.watcher.schedule.settle_s = 0.05  # so that the pause below is "long"
        with (env.plugins / "hello.wasm").open("wb") as f:  # rewritten in place, slowly
            seen = reports.count()
            f.write(data[: len(data) // 2])
            f.flush()
            reports.wait_read("hello.wasm", after=seen)  # read half-written, during the pause
            assert reports.held("hello.wasm")
            assert d.invoke("hello") == b"hello@1.0.0:x"  # the old version keeps serving
            f.write(data[len(data) // 2 :])
        d.events.wait("plugin.upgraded", "hello", version="2.0.0")
        assert d.invoke("hello") == b"hello@2.0.0:x"
        assert "plugin.rejected" not in d.events.labels()
        assert sum(d.parts.stats.rejected.values()) == 0
        assert not d.parts.directory.held


def test_a_writer_reopening_the_file_for_every_chunk_causes_no_rejection(env: Env) -> None:
    data = plugin("hello", "2.0.0")
    size = -(-len(data) // 5)
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    with in_process(env) as d:
        reports = Reports(d)
        path = env.plugins / "hello.wasm"
        for i, chunk in enumerate(chunks[:-1]):
            seen = reports.count()
            with path.open("wb" if i == 0 else "ab") as f:  # a fresh open/close per chunk
                f.write(chunk)
            reports.wait_read("hello.wasm", after=seen)  # each close was read …
            assert reports.held("hello.wasm")  # … and the half-written file held
            assert d.invoke("hello") == b"hello@1.0.0:x"
        with path.open("ab") as f:
            f.write(chunks[-1])
        d.events.wait("plugin.upgraded", "hello", version="2.0.0")
        assert d.invoke("hello") == b"hello@2.0.0:x"
        assert "plugin.rejected" not in d.events.labels()
        assert sum(d.parts.stats.rejected.values()) == 0
        assert not d.parts.directory.held
        assert env.state()["active"]["hello"]["version"] == "2.0.0"


def test_a_half_written_file_that_was_closed_is_rejected(env: Env) -> None:
    data = plugin("hello", "2.0.0")
    with in_process(env) as d:
        path = env.plugins / "hello-2.wasm"
        with path.open("wb") as f:
            f.write(data[: len(data) // 2])
        # held while its writer might reopen it, judged when the reopen window ends
        [event] = d.events.wait("plugin.rejected")
        assert event.details == {"file": "hello-2.wasm"}
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert env.state()["active"]["hello"]["version"] == "1.0.0"


def test_a_writer_quiet_for_the_write_grace_gets_its_file_judged(env: Env) -> None:
    data = plugin("hello", "2.0.0")
    clock = JumpClock()
    with in_process(env, clock=clock) as d:
        reports = Reports(d)
        d.parts.watcher.schedule.settle_s = 0.05
        with (env.plugins / "hello-2.wasm").open("wb") as f:
            seen = reports.count()
            f.write(data[: len(data) // 2])
            f.flush()
            reports.wait_read("hello-2.wasm", after=seen)
            assert reports.held("hello-2.wasm")
            clock.advance(WRITE_GRACE_S)  # as if it stayed open and quiet that long
            d.sync()  # the periodic rescan
            [event] = d.events.wait("plugin.rejected")
            assert event.details == {"file": "hello-2.wasm"}
        assert d.invoke("hello") == b"hello@1.0.0:x"
