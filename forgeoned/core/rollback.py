"""Rollback protection: never activate a version below the highest ever activated.

The floors and overrides are the records of :mod:`forgeoned.core.state` (``Floor`` and
``DowngradeOverride``), persisted by ``StateStore``; this module is the pure decision over
those values, typed structurally.

Rules for a candidate (name, version, sha256) against the floor of that name:

* no floor: a first install;
* a higher version: an upgrade;
* the same version (semver precedence, build metadata ignored) with the same bytes: fine;
* the exact bytes of the active version (an allowed downgrade that became active stays the
  active version across restarts: its restart is not a new downgrade);
* the same version with other bytes, or a lower version: :class:`RollbackError`, unless an
  admin recorded an override for exactly that version (and, if it names bytes, those bytes).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from typing import Protocol, TypeVar

import semver

from forgeoned.errors import RollbackError


class FloorLike(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def sha256(self) -> str: ...


class OverrideLike(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def sha256(self) -> str | None: ...


F = TypeVar("F", bound=FloorLike)


class Verdict(enum.Enum):
    FIRST = "first"
    UPGRADE = "upgrade"
    SAME = "same"
    OVERRIDDEN = "overridden"  # allowed only by an admin's recorded override (audit it)
    ACTIVE = "active"  # the active version itself, below the floor (an allowed downgrade)


@functools.lru_cache(maxsize=1024)
def _parse(version: str) -> semver.Version:
    """Parsed once per distinct string (a start compares every plugin's version with its
    floor; a ``semver.Version`` is immutable, so one may be shared)."""
    return semver.Version.parse(version)


def _compare(a: str, b: str) -> int:
    return _parse(a).compare(_parse(b))


def check_rollback(
    name: str,
    version: str,
    sha256: str,
    floors: Mapping[str, FloorLike],
    overrides: Mapping[str, OverrideLike],
    active_sha256: str | None = None,
) -> Verdict:
    """Decide whether (name, version, sha256) may be activated; raises RollbackError.
    ``active_sha256`` is the hash of the version now recorded as active for ``name``."""
    floor = floors.get(name)
    if floor is None:
        return Verdict.FIRST
    order = _compare(version, floor.version)
    if order > 0:
        return Verdict.UPGRADE
    if order == 0 and sha256 == floor.sha256:
        return Verdict.SAME
    if active_sha256 is not None and sha256 == active_sha256:
        return Verdict.ACTIVE
    override = overrides.get(name)
    if override is not None and override.version == version and override.sha256 in (None, sha256):
        return Verdict.OVERRIDDEN
    if order == 0:
        raise RollbackError(
            f"{name} {version}: same version as already activated but different bytes "
            f"(sha256 {sha256[:12]}… != {floor.sha256[:12]}…)"
        )
    raise RollbackError(
        f"{name} {version} is a downgrade: {floor.version} was already activated "
        "(an admin may allow this exact version)"
    )


def next_floor(current: F | None, activated: F) -> F:
    """The floor to persist after ``activated`` went live: the higher of the two versions.

    At an equal version the newly activated bytes win (only reachable through an override),
    so a restart accepts the bytes that are actually running.
    """
    if current is None or _compare(activated.version, current.version) >= 0:
        return activated
    return current
