"""Reading artifact files from plugins.d safely: no symlink followed, regular files only,
size-capped, and a file that changed while it was read is reported as such (read it again
later), never returned half-old, half-new.

Anyone who can write into plugins.d can put a symlink, a FIFO or a device there, or keep
appending to a file: the open never follows a link (``O_NOFOLLOW``), never blocks
(``O_NONBLOCK``), the type and size are checked on the open descriptor, the read stops past
the cap, and the identity before and after the read (and of the path afterwards) must agree.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Final

from forgeoned.core.artifact_file import ArtifactFile, Identity
from forgeoned.errors import (
    ArtifactTooLargeError,
    FileChangedError,
    UnreadableFileError,
    UnsafeFileError,
)

ARTIFACT_SUFFIX: Final = ".wasm"
SIG_SUFFIX: Final = ".wasm.sig"
ATTESTATION_SUFFIX: Final = ".wasm.intoto.json"
MAX_SIG_BYTES: Final = 64 * 1024
CHUNK_BYTES: Final = 1 << 20
_IGNORED: Final = ("*~", "*.swp", "*.swx", "*.tmp", "#*#", "*.part", "*.crdownload")

Reader = Callable[[int, int], bytes]
"""``os.read``'s shape: (fd, at most n bytes) -> bytes. Injectable so a test can change the
file between two reads deterministically."""


def artifact_name(filename: str) -> str | None:
    """The artifact file a directory entry belongs to, or None if it is to be ignored."""
    if filename.startswith((".", "#")) or any(fnmatch(filename, p) for p in _IGNORED):
        return None
    if filename.endswith(SIG_SUFFIX):
        return filename[: -len(".sig")]
    if filename.endswith(ATTESTATION_SUFFIX):  # a staging attestation: its artifact's change
        return filename[: -len(ATTESTATION_SUFFIX) + len(".wasm")]
    if filename.endswith(ARTIFACT_SUFFIX) and len(filename) > len(ARTIFACT_SUFFIX):
        return filename
    return None


def _open(path: Path) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(f"{path.name}: is a symlink (never followed)") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise UnreadableFileError(f"{path.name}: permission denied") from None
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(path) from None
        raise UnreadableFileError(f"{path.name}: cannot open: {exc.strerror}") from None


def _read_regular(path: Path, max_bytes: int, read: Reader = os.read) -> tuple[bytes, Identity]:
    fd = _open(path)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            kind = "FIFO" if stat.S_ISFIFO(before.st_mode) else "not a regular file"
            raise UnsafeFileError(f"{path.name}: is a {kind} (rejected)")
        if before.st_size > max_bytes:
            raise ArtifactTooLargeError(f"{path.name}: {before.st_size} bytes, over {max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while chunk := read(fd, CHUNK_BYTES):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ArtifactTooLargeError(f"{path.name}: grew over {max_bytes} bytes")
        after = os.fstat(fd)
    except OSError as exc:
        raise UnreadableFileError(f"{path.name}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    ident = Identity.of(before)
    if Identity.of(after) != ident or total != before.st_size:
        raise FileChangedError(path.name)
    try:
        now = path.lstat()
    except FileNotFoundError:
        raise FileChangedError(path.name) from None
    if Identity.of(now) != ident:
        raise FileChangedError(path.name)  # replaced by another file while we read
    return b"".join(chunks), ident


def read_artifact(path: Path, max_bytes: int, read: Reader = os.read) -> ArtifactFile:
    """Read ``path`` (and ``path.sig``) without following symlinks; raises on anything odd.

    Raises :class:`FileNotFoundError` if it is gone, :class:`FileChangedError` if it changed
    while being read, :class:`ArtifactError` subclasses for files that must be rejected.
    """
    data, ident = _read_regular(path, max_bytes, read)
    sig_path = path.with_name(path.name + ".sig")
    try:
        detached, _ = _read_regular(sig_path, MAX_SIG_BYTES, read)
    except FileNotFoundError:
        detached = None
    return ArtifactFile(data, detached, ident)


def list_artifacts(directory: Path) -> list[str]:
    """Names of candidate artifact files in ``directory`` (not following anything)."""
    names = set()
    with os.scandir(directory) as it:
        for entry in it:
            name = artifact_name(entry.name)
            if name is not None and name == entry.name:
                names.add(name)
    return sorted(names)
