"""A Kubernetes ConfigMap volume, written the way the kubelet's AtomicWriter writes it.

``..TIMESTAMP/`` holds the files; ``..data`` links to it and is replaced by renaming a new
``..data_tmp`` link over it; each key ``NAME`` is a link to ``..data/NAME``, created once and
removed when the key leaves the ConfigMap; the previous timestamped directory is removed
last. (The kubelet's own order, from its atomic_writer.go; no code of it is copied.)
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

_serial = itertools.count()


def project(directory: Path, files: dict[str, bytes]) -> None:
    """Make ``directory`` hold exactly ``files``, as a ConfigMap update does."""
    directory.mkdir(exist_ok=True)
    data = directory / "..data"
    old = data.readlink() if data.is_symlink() else None
    stamp = f"..2026_12_05_00_00_00.{next(_serial):09d}"
    fresh = directory / stamp
    fresh.mkdir(mode=0o755)
    for name, content in files.items():
        (fresh / name).write_bytes(content)
        (fresh / name).chmod(0o644)
    tmp = directory / "..data_tmp"
    tmp.symlink_to(stamp)
    tmp.rename(data)  # the one atomic step
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    if old is not None:
        shutil.rmtree(directory / old)
