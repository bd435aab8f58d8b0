"""The plugins.d watcher on real watchdog and real files: what it reports, and when a file
counts as being written (long waits stood in for by jumping the clock)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_kit import JumpClock

from forgeoned.adapters.files.changes import REOPEN_S, WRITE_GRACE_S
from forgeoned.adapters.files.observer import DirectoryWatcher


class Batches:
    def __init__(self) -> None:
        self.seen: list[set[str]] = []
        self.cond = threading.Condition()

    def __call__(self, names: set[str]) -> None:
        with self.cond:
            self.seen.append(names)
            self.cond.notify_all()

    def wait_for(self, name: str, timeout: float = 10.0, after: int = 0) -> None:
        """Wait until a batch after the first ``after`` ones names ``name``."""
        with self.cond:
            ok = self.cond.wait_for(lambda: any(name in b for b in self.seen[after:]), timeout)
        assert ok, f"{name} not reported: {self.seen}"

    def count(self) -> int:
        with self.cond:
            return len(self.seen)

    def all(self) -> set[str]:
        with self.cond:
            return set().union(*self.seen) if self.seen else set()


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Batches]]:
    batches = Batches()
    watcher = DirectoryWatcher(tmp_path, batches, debounce_s=0.02, settle_s=0.5)
    watcher.start()
    yield tmp_path, batches
    watcher.close()


def test_rename_in_and_close_after_write_are_reported(watched: tuple[Path, Batches]) -> None:
    directory, batches = watched
    tmp = directory / ".incoming.tmp"
    tmp.write_bytes(b"\0asm")
    tmp.rename(directory / "renamed.wasm")
    batches.wait_for("renamed.wasm")
    with (directory / "written.wasm").open("wb") as f:
        f.write(b"\0asm")
    batches.wait_for("written.wasm")
    before = batches.count()
    (directory / "written.wasm").unlink()
    batches.wait_for("written.wasm", after=before)
    assert ".incoming.tmp" not in batches.all()


def test_detached_signature_change_reports_its_artifact(watched: tuple[Path, Batches]) -> None:
    directory, batches = watched
    (directory / "p.wasm.sig").write_bytes(b"sig")
    batches.wait_for("p.wasm")


def test_burst_is_debounced_into_few_batches(watched: tuple[Path, Batches]) -> None:
    directory, batches = watched
    names = {f"p{i}.wasm" for i in range(300)}
    for name in sorted(names):
        (directory / name).write_bytes(b"\0asm")
    for name in sorted(names):
        batches.wait_for(name)
    assert batches.all() >= names
    assert batches.count() < len(names)  # coalesced, not one callback per file


def test_a_file_open_for_writing_is_reported_as_being_written(tmp_path: Path) -> None:
    batches, clock = Batches(), JumpClock()
    watcher = DirectoryWatcher(tmp_path, batches, debounce_s=0.01, settle_s=0.05, clock=clock)
    watcher.start()
    try:
        with (tmp_path / "slow.wasm").open("wb") as f:
            f.write(b"\0asm")
            f.flush()
            batches.wait_for("slow.wasm")  # reported after settle_s, still open
            assert watcher.is_writing("slow.wasm")
            assert not watcher.is_writing("other.wasm")
            seen = batches.count()
        batches.wait_for("slow.wasm", after=seen)  # the close is reported too
        assert watcher.is_writing("slow.wasm")  # its writer may still reopen it …
        seen = batches.count()
        clock.advance(REOPEN_S)
        watcher.wake()
        batches.wait_for("slow.wasm", after=seen)  # … and once it did not, it is reported
        assert not watcher.is_writing("slow.wasm")
        with (tmp_path / "stuck.wasm").open("wb") as f:
            f.write(b"\0asm")
            f.flush()
            batches.wait_for("stuck.wasm")
            assert watcher.is_writing("stuck.wasm")
            clock.advance(WRITE_GRACE_S)  # a writer quiet for the grace counts as done
            assert not watcher.is_writing("stuck.wasm")
    finally:
        watcher.close()
