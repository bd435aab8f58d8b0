"""Artifact files as plugins.d holds them: the bytes read, and what tells two versions of a
file apart without reading it (the index re-reads a file only when that changed).

Values only; :mod:`forgeoned.adapters.files.artifact_read` reads the files (safely: no symlinks,
no FIFOs, a size cap) and :class:`~forgeoned.core.ports.PluginFiles` is the port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """What tells two versions of a file apart without reading it."""

    inode: int
    size: int
    mtime_ns: int
    mode: int  # a chmod that makes an unreadable file readable is a change too
    uid: int = 0  # the owner: who the audit log credits the file to (a chown is a change)

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)


# The identity of an artifact file, of its detached signature and of the staging attestation
# beside it (None: no ``.sig``, no ``.intoto.json``): a change of either re-reads the artifact.
FileKey = tuple[Identity, Identity | None, Identity | None]


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    data: bytes
    detached: bytes | None
    identity: Identity
