"""The desired set: which file in plugins.d should be running for each plugin name.

``plugins.d`` is the desired state (DESIGN.md section 4). Several files may carry the same
plugin name; the highest semantic version wins. Two files with the same name and version are
resolved deterministically: identical bytes are the same artifact (either file will do); if the
bytes differ, the one already running is kept, otherwise the lexicographically first file name
wins and the other is reported as a conflict, so that the result never depends on directory
listing order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import semver


@dataclass(frozen=True, slots=True)
class Candidate:
    """One valid artifact found in plugins.d (its manifest already parsed)."""

    name: str
    version: str
    sha256: str
    filename: str

    @property
    def semver(self) -> semver.Version:
        return _parse(self.version)


@functools.lru_cache(maxsize=65536)
def _parse(version: str) -> semver.Version:
    """Parsing is the slow part of comparing thousands of candidates; versions repeat."""
    return semver.Version.parse(version)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A file that lost against another file of the same name and version."""

    loser: Candidate
    winner: Candidate


@dataclass(frozen=True, slots=True)
class DesiredSet:
    wanted: dict[str, Candidate]
    conflicts: tuple[Conflict, ...] = ()


def _better(a: Candidate, b: Candidate, running: Mapping[str, str]) -> bool:
    """Whether ``a`` beats ``b`` (same plugin name)."""
    va, vb = a.semver, b.semver
    if va != vb:
        return va > vb
    # Same precedence: build metadata is ignored by semver ordering; compare full strings
    # so that "1.0.0+b2" vs "1.0.0+b1" is still deterministic.
    if a.version != b.version:
        return a.version > b.version
    current = running.get(a.name)
    if current is not None and (a.sha256 == current) != (b.sha256 == current):
        return a.sha256 == current
    return a.filename < b.filename


def desired_set(candidates: Sequence[Candidate], running: Mapping[str, str]) -> DesiredSet:
    """Pick one candidate per name. ``running`` maps name to the sha256 now running."""
    best: dict[str, Candidate] = {}
    for cand in candidates:
        prev = best.get(cand.name)
        if prev is None or _better(cand, prev, running):
            best[cand.name] = cand
    conflicts: list[Conflict] = []
    for cand in candidates:
        win = best[cand.name]
        if cand is not win and cand.version == win.version and cand.sha256 != win.sha256:
            conflicts.append(Conflict(cand, win))
    return DesiredSet(best, tuple(conflicts))
