"""Reading plugins.d safely: real files, symlinks, FIFOs, devices, and files that change while
they are read (a fake read changes them between two reads, deterministically)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from forgeoned.adapters.files.artifact_read import (
    artifact_name,
    list_artifacts,
    read_artifact,
)
from forgeoned.errors import ArtifactTooLargeError, FileChangedError, UnsafeFileError


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
    path.write_bytes(b"\0asm" + b"x" * 100)
    appended: list[int] = []

    def read_then_append(fd: int, n: int) -> bytes:
        chunk = os.read(fd, n)
        if not appended:  # a writer appends once, between the first and the second read
            with path.open("ab") as f:
                appended.append(f.write(b"y" * 10))
        return chunk

    with pytest.raises(FileChangedError):
        read_artifact(path, 1024, read=read_then_append)
    assert path.stat().st_size == 114


def test_file_growing_past_the_cap_during_the_read_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "grow.wasm"
    path.write_bytes(b"\0asm")

    def read_then_append(fd: int, n: int) -> bytes:
        chunk = os.read(fd, n)
        with path.open("ab") as f:  # an endless appender, one chunk per read
            f.write(b"y" * 256)
        return chunk

    with pytest.raises(ArtifactTooLargeError, match="grew over 1024"):
        read_artifact(path, 1024, read=read_then_append)
    assert path.stat().st_size <= 4 + 256 * 6  # the read stopped just past the cap


def test_file_replaced_during_the_read_raises_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "swap.wasm"
    path.write_bytes(b"\0asm-old")
    (tmp_path / ".new").write_bytes(b"\0asm-new")
    renamed: list[bool] = []

    def read_then_replace(fd: int, n: int) -> bytes:
        if not renamed:
            (tmp_path / ".new").rename(path)
            renamed.append(True)
        return os.read(fd, n)

    with pytest.raises(FileChangedError):
        read_artifact(path, 1024, read=read_then_replace)
    assert read_artifact(path, 1024).data == b"\0asm-new"


def test_list_artifacts_skips_ignored_names(tmp_path: Path) -> None:
    for name in ("b.wasm", "a.wasm", "a.wasm.sig", ".x.wasm", "c.wasm~", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list_artifacts(tmp_path) == ["a.wasm", "b.wasm"]
