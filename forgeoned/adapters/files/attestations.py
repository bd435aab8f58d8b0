"""Staging attestations beside the artifacts: ``plugins.d/NAME.wasm.intoto.json``.

The finder reads every such file (regular files only, never through a symlink, dotfiles and
oversized files skipped); :func:`~forgeoned.core.attestation.check_attestations` keeps the
one that attests the artifact being verified. ``install`` writes the attestation it was
given beside the module, before the module, like a detached signature.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.core.attestation import MAX_ENVELOPE_BYTES, SUFFIX


def _read_regular(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENVELOPE_BYTES:
            return None
        return os.read(fd, MAX_ENVELOPE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


class AttestationFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self) -> list[bytes]:
        try:
            names = sorted(p.name for p in self.directory.iterdir())
        except OSError:
            return []
        found = []
        for name in names:
            if name.startswith(".") or not name.endswith(SUFFIX):
                continue
            data = _read_regular(self.directory / name)
            if data is not None:
                found.append(data)
        return found

    def write(self, filename: str, envelope: bytes) -> None:
        """Put ``envelope`` beside plugins.d/``filename``."""
        atomic_write(self.directory / f"{filename}{SUFFIX}", envelope, 0o644)


def beside(path: Path) -> list[bytes]:
    """``PATH.intoto.json`` if it exists (what ``forgeonectl check`` reads)."""
    data = _read_regular(path.with_name(path.name + SUFFIX))
    return [data] if data is not None else []
