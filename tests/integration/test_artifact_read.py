"""Reading plugins.d safely, and the inotify watcher (real watchdog, real files)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeoned.adapters.files.watcher import (
    DirectoryWatcher,
    FileChangedError,
    UnsafeFileError,
    artifact_name,
    list_artifacts,
    read_artifact,
)
from forgeoned.errors import ArtifactTooLargeError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hello.wasm", "hello.wasm"),
        ("hello.wasm.sig", "hello.wasm"),
        (".hello.wasm", None),
        ("hello.wasm~", None),
        (".#hello.wasm", None),
        ("hello.wasm.swp", None),
        ("hello.wasm.tmp", None),
        ("#hello.wasm#", None),
        ("README", None),
        (".wasm", None),
    ],
)
def test_dotfiles_and_editor_temporaries_are_ignored(name: str, expected: str | None) -> None:
    assert artifact_name(name) == expected


def test_reads_a_regular_file_and_its_detached_signature(tmp_path: Path) -> None:
    (tmp_path / "a.wasm").write_bytes(b"\0asm-data")
    (tmp_path / "a.wasm.sig").write_bytes(b"sig")
    art = read_artifact(tmp_path / "a.wasm", 1024)
    assert (art.data, art.detached) == (b"\0asm-data", b"sig")
    assert art.identity.size == 9


def test_symlink_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "real.bin"
    target.write_bytes(b"\0asm")
    (tmp_path / "link.wasm").symlink_to(target)
    with pytest.raises(UnsafeFileError, match="symlink"):
        read_artifact(tmp_path / "link.wasm", 1024)
    assert target.read_bytes() == b"\0asm"


def test_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.wasm")
    with pytest.raises(UnsafeFileError, match="FIFO"):
        read_artifact(tmp_path / "pipe.wasm", 1024)


def test_device_is_rejected(tmp_path: Path) -> None:
    try:
        os.mknod(tmp_path / "null.wasm", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating device nodes needs CAP_MKNOD")
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        read_artifact(tmp_path / "null.wasm", 1024)


def test_directory_named_like_a_plugin_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "dir.wasm").mkdir()
    with pytest.raises(UnsafeFileError):
        read_artifact(tmp_path / "dir.wasm", 1024)


def test_oversized_file_is_rejected_unread(tmp_path: Path) -> None:
    (tmp_path / "big.wasm").write_bytes(b"x" * 2048)
    with pytest.raises(ArtifactTooLargeError):
        read_artifact(tmp_path / "big.wasm", 1024)


def test_file_growing_during_the_read_raises_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "grow.wasm"
    path.write_bytes(b"\0asm" + b"x" * (4 << 20))
    stop = threading.Event()

    def grow() -> None:
        with path.open("ab") as f:
            while not stop.is_set():
                f.write(b"y" * 65536)
                f.flush()

    t = threading.Thread(target=grow)
    t.start()
    try:
        with pytest.raises(FileChangedError):
            for _ in range(200):  # each read races the writer; one must see the change
                read_artifact(path, 1 << 40)
    finally:
        stop.set()
        t.join(10)


def test_list_artifacts_skips_ignored_names(tmp_path: Path) -> None:
    for name in ("b.wasm", "a.wasm", "a.wasm.sig", ".x.wasm", "c.wasm~", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list_artifacts(tmp_path) == ["a.wasm", "b.wasm"]


class Batches:
    def __init__(self) -> None:
        self.seen: list[set[str]] = []
        self.cond = threading.Condition()

    def __call__(self, names: set[str]) -> None:
        with self.cond:
            self.seen.append(names)
            self.cond.notify_all()

    def wait_for(self, name: str, timeout: float = 10.0) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(name in b for b in self.seen), timeout)
        assert ok, f"{name} not reported: {self.seen}"

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
    (directory / "written.wasm").unlink()
    before = len(batches.seen)
    batches.wait_for("written.wasm")
    assert len(batches.seen) >= before
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
    assert len(batches.seen) < len(names)  # coalesced, not one callback per file


def test_a_file_open_for_writing_is_reported_as_being_written(tmp_path: Path) -> None:
    batches = Batches()
    watcher = DirectoryWatcher(tmp_path, batches, debounce_s=0.01, settle_s=0.05)
    watcher.start()
    try:
        with (tmp_path / "slow.wasm").open("wb") as f:
            f.write(b"\0asm")
            f.flush()
            batches.wait_for("slow.wasm")  # reported after settle_s, still open
            assert watcher.is_writing("slow.wasm")
            assert not watcher.is_writing("other.wasm")
            seen = len(batches.seen)
        with batches.cond:  # the close is reported too, and ends "being written"
            assert batches.cond.wait_for(lambda: len(batches.seen) > seen, 10)
        assert not watcher.is_writing("slow.wasm")
        with (tmp_path / "stuck.wasm").open("wb") as f:
            f.write(b"\0asm")
            f.flush()
            batches.wait_for("stuck.wasm")
            watcher.write_grace_s = 0.0  # a writer quiet for the grace counts as done
            assert not watcher.is_writing("stuck.wasm")
    finally:
        watcher.close()
