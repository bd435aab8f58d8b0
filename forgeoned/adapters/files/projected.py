"""The one symlink layout a trust store may have: a Kubernetes ConfigMap/Secret volume.

The kubelet writes a mounted ConfigMap atomically (its ``AtomicWriter``)::

    trusted.d/..2026_12_05_05_15_00.123456789/ops.pub   the files, in a timestamped directory
    trusted.d/..data -> ..2026_12_05_05_15_00.123456789  swapped by rename on every update
    trusted.d/ops.pub -> ..data/ops.pub                  one link per key, stable

StrictModes otherwise refuses any symlink in the trust store (a link could point anywhere).
This layout is accepted because every link stays inside the trust dir and is pinned to the
exact shape above: a key entry ``NAME`` links to exactly ``..data/NAME``; ``..data`` links to
exactly one dot-dot-prefixed name (no ``/``) that is a real directory in the trust dir; and
``NAME`` there is a regular file. Owner and mode checks then apply to that real directory
and file as to any other (the kubelet writes them as root, 0644 by default: ``defaultMode``
must keep group/other write off). Anything else that is a link is still refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

DATA_LINK: Final = "..data"


def projected_file(directory: Path, name: str) -> Path | None:
    """The real path of ``directory/name`` when it is a ConfigMap projection of a regular
    file (as described above), else None (not a link of that shape, or missing)."""
    link = directory / name
    try:
        if str(link.readlink()) != f"{DATA_LINK}/{name}":
            return None
        target = str((directory / DATA_LINK).readlink())
    except OSError:
        return None
    if "/" in target or not target.startswith("..") or target in ("..", DATA_LINK):
        return None
    real_dir = directory / target
    real = real_dir / name
    try:
        if not stat.S_ISDIR(os.lstat(real_dir).st_mode):
            return None
        if not stat.S_ISREG(os.lstat(real).st_mode):
            return None
    except OSError:
        return None
    return real
