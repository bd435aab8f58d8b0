"""plugins.d as the plugin index sees it: :class:`forgeoned.core.ports.PluginFiles` over the
safe reading in :mod:`forgeoned.adapters.files.artifact_read` and :func:`atomic_write`."""

from __future__ import annotations

import os
from pathlib import Path

from forgeoned.adapters.files.artifact_read import list_artifacts, read_artifact
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.core.artifact_file import ArtifactFile, FileKey, Identity
from forgeoned.core.attestation import SUFFIX as ATTESTATION


def _identity(path: str) -> Identity | None:
    try:
        return Identity.of(os.lstat(path))
    except FileNotFoundError:
        return None


class PluginFilesDir:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / Path(name).name  # never outside plugins.d

    def names(self) -> list[str]:
        return list_artifacts(self.directory)

    def key(self, name: str) -> FileKey | None:
        """Plain ``os`` calls on strings: a rescan asks this of every file."""
        path = str(self._path(name))
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        return Identity.of(st), _identity(path + ".sig"), _identity(path + ATTESTATION)

    def read(self, name: str, max_bytes: int) -> ArtifactFile:
        return read_artifact(self._path(name), max_bytes)

    def write(self, name: str, data: bytes, detached: bytes | None = None) -> None:
        path = self._path(name)
        sig = path.with_name(path.name + ".sig")
        if detached is not None:
            atomic_write(sig, detached, 0o644)  # first: the module is judged with it
        else:
            sig.unlink(missing_ok=True)  # a signature of other bytes would refuse these
        atomic_write(path, data, 0o644)

    def delete(self, name: str) -> None:
        path = self._path(name)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sig").unlink(missing_ok=True)
        path.with_name(path.name + ATTESTATION).unlink(missing_ok=True)
