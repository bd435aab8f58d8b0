"""The daemon's index of plugins.d: each artifact file, read safely and verified once.

A file is re-read only when its identity (inode, size, mtime, and its detached signature's)
changed, so a periodic rescan of thousands of files costs one ``lstat`` each. A rejection is
reported once per version of a file, not at every rescan. A file that fails while it is still
open for writing (``writing``, the watcher's view) is held, not rejected: it is judged again
when it is closed (the watcher reports that) or at the next rescan.

Each file's version is credited to an actor for the audit log: the uid that owns the file
(whoever may write plugins.d changes the desired state, so that is who changed it), or the
caller the control API named with :meth:`PluginDirectory.attribute` for a file the daemon
wrote or deleted on its behalf. The last actor of a file that went away is remembered, so
its removal is credited too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from forgeoned.adapters.files.artifact_read import Identity, list_artifacts, read_artifact
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.desired import Candidate
from forgeoned.errors import ArtifactError, FileChangedError

Verifier = Callable[[bytes, bytes | None], VerifiedArtifact]
FileKey = tuple[Identity, Identity | None]
Known = tuple[VerifiedArtifact, bytes | None]  # the verified artifact and its detached sig
MAX_DEPARTED = 4096  # actors of removed files kept for their removal events


@dataclass(frozen=True, slots=True)
class Entry:
    key: FileKey
    candidate: Candidate | None
    error: ArtifactError | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    filename: str
    error: ArtifactError
    name: str | None = None  # the plugin name, when the manifest could be read


def _key(path: Path) -> tuple[FileKey, int] | None:
    """The file's identity (and its detached signature's), and the uid that owns it."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    try:
        sig: Identity | None = Identity.of(path.with_name(path.name + ".sig").lstat())
    except FileNotFoundError:
        sig = None
    return (Identity.of(st), sig), st.st_uid


class PluginDirectory:
    def __init__(self, directory: Path, verifier: Verifier, max_bytes: int) -> None:
        self.directory = directory
        self.verifier = verifier
        self.max_bytes = max_bytes
        self.entries: dict[str, Entry] = {}
        self._verified: dict[str, Known] = {}  # by file name
        self._by_sha: dict[str, Known] = {}
        self.writing: Callable[[str], bool] = lambda name: False
        self.held: set[str] = set()  # failed while still being written; not yet judged
        self.describe_owner: Callable[[int], str] = lambda uid: f"uid={uid}"
        self._actors: dict[str, str] = {}  # file name -> who wrote its current version
        self._departed: OrderedDict[str, str] = OrderedDict()  # ... of files now gone
        self._attributed: dict[str, str] = {}  # file name -> actor of its next change

    def refresh(self, names: Iterable[str]) -> tuple[list[Rejection], set[str]]:
        """Re-read ``names`` if they changed; returns (new rejections, names to retry)."""
        rejections: list[Rejection] = []
        retry: set[str] = set()
        for name in names:
            path = self.directory / name
            found = _key(path)
            old = self.entries.get(name)
            if found is None:
                self._forget(name)
                continue
            key, owner = found
            if old is not None and old.key == key:
                continue
            try:
                entry = self._read(path, key)
            except FileChangedError:
                retry.add(name)
                continue
            except FileNotFoundError:
                self._forget(name)
                continue
            if entry.error is not None and self.writing(name):
                self.held.add(name)  # whatever ran from the previous bytes keeps running
                continue
            self.held.discard(name)
            self.entries[name] = entry
            self._actors[name] = self._attributed.pop(name, "") or self.describe_owner(owner)
            if entry.error is not None:
                self._drop_verified(name)
                rejections.append(Rejection(name, entry.error))
        return rejections, retry

    def rescan(self) -> tuple[list[Rejection], set[str]]:
        """Reconcile the index with a full directory listing (whatever inotify missed)."""
        present = set(list_artifacts(self.directory))
        for gone in set(self.entries) - present:
            self._forget(gone)
        return self.refresh(sorted(present))

    def _read(self, path: Path, key: FileKey) -> Entry:
        try:
            art = read_artifact(path, self.max_bytes)
            verified = self.verifier(art.data, art.detached)
        except ArtifactError as exc:
            return Entry(key, None, exc)
        m = verified.manifest
        cand = Candidate(m.name, m.version, verified.sha256, path.name)
        self._drop_verified(path.name)
        self._verified[path.name] = self._by_sha[verified.sha256] = (verified, art.detached)
        return Entry((art.identity, key[1]), cand)

    def _forget(self, name: str) -> None:
        self.held.discard(name)
        self.entries.pop(name, None)
        self._drop_verified(name)
        attributed, owner = self._attributed.pop(name, None), self._actors.pop(name, None)
        actor = attributed or owner
        if actor is not None:
            self._departed[name] = actor
            self._departed.move_to_end(name)
            while len(self._departed) > MAX_DEPARTED:
                self._departed.popitem(last=False)

    def attribute(self, filename: str, actor: str) -> None:
        """Credit the next change of ``filename`` (written or deleted by the daemon for a
        control-API caller) to ``actor`` rather than to the file's owner."""
        self._attributed[filename] = actor

    def actor_of(self, filename: str) -> str | None:
        """Who wrote the current version of ``filename``, or removed it if it is gone."""
        return self._actors.get(filename) or self._departed.get(filename)

    def clear(self) -> None:
        """Forget everything (the trust changed): the next rescan re-reads every file."""
        self.entries.clear()
        self.held.clear()
        self._verified.clear()
        self._by_sha.clear()

    def _drop_verified(self, name: str) -> None:
        known = self._verified.pop(name, None)
        if known is not None and self._by_sha.get(known[0].sha256) is known:
            del self._by_sha[known[0].sha256]

    def candidates(self) -> list[Candidate]:
        return [e.candidate for e in self.entries.values() if e.candidate is not None]

    def known(self, candidate: Candidate) -> Known | None:
        """The artifact verified for ``candidate`` (exact bytes, never re-read), by file name
        or, for a candidate restored from the state, by content hash."""
        entry = self.entries.get(candidate.filename)
        if entry is not None and entry.candidate == candidate:
            return self._verified.get(candidate.filename)
        return self._by_sha.get(candidate.sha256)

    def path_of(self, filename: str) -> Path:
        return self.directory / Path(filename).name
