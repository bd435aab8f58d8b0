"""The daemon's index of plugins.d: each artifact file, read safely and verified once.

A file is re-read only when its identity (inode, size, mtime, and its detached signature's)
changed, so a periodic rescan of thousands of files costs one ``lstat`` each. A change of the
staging attestation beside a file re-reads it only if it was refused: an attestation is
required to admit bytes, so one replaced beside admitted bytes un-admits nothing. A rejection is
reported once per version of a file, not at every rescan. A file that fails while it is still
open for writing (``writing``, the watcher's view) is held, not rejected: it is judged again
when it is closed (the watcher reports that) or at the next rescan.

Each file's version is credited to an actor for the audit log when no operator asked for the
change through the control API: the uid that owns the file (whoever may write plugins.d
changes the desired state, so that is who changed it). The last owner of a file that went
away is remembered, so that its removal is credited too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.artifact_file import FileKey
from forgeoned.core.desired import Candidate
from forgeoned.core.ports import PluginFiles
from forgeoned.errors import ArtifactError, FileChangedError

Verifier = Callable[[bytes, bytes | None], VerifiedArtifact]
Known = tuple[VerifiedArtifact, bytes | None]  # the verified artifact and its detached sig
MAX_DEPARTED = 4096  # owners of removed files kept for their removal events


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


class PluginDirectory:
    def __init__(self, files: PluginFiles, verifier: Verifier, max_bytes: int) -> None:
        self.files = files
        self.verifier = verifier
        self.max_bytes = max_bytes
        self.entries: dict[str, Entry] = {}
        self._verified: dict[str, Known] = {}  # by file name
        self._by_sha: dict[str, Known] = {}
        self.writing: Callable[[str], bool] = lambda name: False
        self.held: set[str] = set()  # failed while still being written; not yet judged
        self.describe_owner: Callable[[int], str] = lambda uid: f"uid={uid}"
        self._owners: dict[str, str] = {}  # file name -> its owner, as an audit actor
        self._departed: OrderedDict[str, str] = OrderedDict()  # ... of files now gone
        # what clear() forgot of the rejected files: (identity, reason), so that judging them
        # again reports only a verdict that changed
        self._reported: dict[str, tuple[FileKey, str]] = {}

    def refresh(self, names: Iterable[str]) -> tuple[list[Rejection], set[str]]:
        """Re-read ``names`` if they changed; returns (new rejections, names to retry)."""
        rejections: list[Rejection] = []
        retry: set[str] = set()
        for name in names:
            key = self.files.key(name)
            old = self.entries.get(name)
            if key is None:
                self._forget(name)
                continue
            if old is not None and old.key == key:
                continue
            if old is not None and old.error is None and old.key[0] == key[0]:
                # only the detached signature or staging attestation beside it changed: the
                # module's bytes were admitted with those it had (an OCI delivery writes the
                # next version's attestation first, `install --sig` its signature): judged
                # again when the module itself changes, so no false rejection in between
                self.entries[name] = Entry(key, old.candidate)
                continue
            try:
                entry = self._read(name, key)
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
            self._owners[name] = self.describe_owner(key[0].uid)
            if entry.error is not None:
                self._drop_verified(name)
                if self._reported.pop(name, None) != (key, entry.error.code):
                    rejections.append(Rejection(name, entry.error))
        return rejections, retry

    def rescan(self) -> tuple[list[Rejection], set[str]]:
        """Reconcile the index with a full directory listing (whatever inotify missed)."""
        present = set(self.files.names())
        for gone in set(self.entries) - present:
            self._forget(gone)
        try:
            return self.refresh(sorted(present))
        finally:
            self._reported.clear()

    def _read(self, name: str, key: FileKey) -> Entry:
        try:
            art = self.files.read(name, self.max_bytes)
            verified = self.verifier(art.data, art.detached)
        except ArtifactError as exc:
            return Entry(key, None, exc)
        m = verified.manifest
        cand = Candidate(m.name, m.version, verified.sha256, name)
        self._drop_verified(name)
        self._verified[name] = self._by_sha[verified.sha256] = (verified, art.detached)
        return Entry((art.identity, key[1], key[2]), cand)

    def _forget(self, name: str) -> None:
        self.held.discard(name)
        self.entries.pop(name, None)
        self._drop_verified(name)
        owner = self._owners.pop(name, None)
        if owner is not None:
            self._departed[name] = owner
            self._departed.move_to_end(name)
            while len(self._departed) > MAX_DEPARTED:
                self._departed.popitem(last=False)

    def actor_of(self, filename: str) -> str | None:
        """Who owns ``filename``, or owned it last if it is gone (for the audit ``actor``)."""
        return self._owners.get(filename) or self._departed.get(filename)

    def clear(self) -> None:
        """Forget everything (the trust changed): the next rescan re-reads every file, and
        reports a file it rejects again only if the reason changed."""
        self._reported = {
            name: (e.key, e.error.code) for name, e in self.entries.items() if e.error is not None
        }
        self.entries.clear()
        self.held.clear()
        self._verified.clear()
        self._by_sha.clear()

    def _drop_verified(self, name: str) -> None:
        known = self._verified.pop(name, None)
        if known is not None and self._by_sha.get(known[0].sha256) is known:
            del self._by_sha[known[0].sha256]

    def rejected(self) -> list[Rejection]:
        """The files refused now, by name (any thread: the entries are copied at once)."""
        entries = sorted(tuple(self.entries.items()), key=lambda item: item[0])  # one step
        return [Rejection(name, e.error) for name, e in entries if e.error is not None]

    def candidates(self) -> list[Candidate]:
        return [e.candidate for e in self.entries.values() if e.candidate is not None]

    def known(self, candidate: Candidate) -> Known | None:
        """The artifact verified for ``candidate`` (exact bytes, never re-read), by file name
        or, for a candidate restored from the state, by content hash."""
        entry = self.entries.get(candidate.filename)
        if entry is not None and entry.candidate == candidate:
            return self._verified.get(candidate.filename)
        return self._by_sha.get(candidate.sha256)

    def files_of(self, plugin: str) -> set[str]:
        """The file names whose artifact is a version of ``plugin``."""
        return {f for f, e in self.entries.items() if e.candidate and e.candidate.name == plugin}

    def known_file(self, filename: str) -> tuple[bytes, bytes | None] | None:
        """The bytes (and detached signature) of ``filename`` as last read, if it was valid."""
        known = self._verified.get(filename)
        return (known[0].module, known[1]) if known is not None else None

    def write(self, filename: str, data: bytes, detached: bytes | None = None) -> None:
        self.files.write(filename, data, detached)

    def delete(self, filename: str) -> None:
        self.files.delete(filename)
