"""The ports of the swap protocol: what :mod:`forgeoned.core.swapper` needs from the world.

A :class:`Loader` turns a candidate file into a :class:`Version` (the runtime adapter); a
:class:`Slot` is where calls for one plugin name go (the daemon's plugin host); a
:class:`Committer` makes the active set durable (the state store). Unit tests implement all
four with small fakes.
"""

from __future__ import annotations

from typing import Any, Protocol

from forgeoned.core.desired import Candidate
from forgeoned.core.lifecycle import State, Trigger


class Version(Protocol):
    """One version of a plugin with its instances created and ``init`` done."""

    @property
    def version(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    def start(self) -> None:
        """Call ``start`` on every instance; raises :class:`PluginFault`."""
        ...

    def shutdown(self) -> None:
        """Call ``stop`` then ``unload`` on every instance and free them; never raises."""
        ...


class Loader(Protocol):
    """Turns a candidate file into a :class:`Version`; each step raises on failure."""

    def verify(self, candidate: Candidate) -> object:
        """Read, verify signature/manifest/rollback floor; raises :class:`ArtifactError`."""
        ...

    def details(self, verified: object) -> dict[str, Any]:
        """What the audit events of this version record about its signature: at least
        ``signers`` (trusted key names) and ``signed`` (False: loaded in development mode)."""
        ...

    def compile(self, verified: object) -> object:
        """Compiled module (cached); raises :class:`LoadError`."""
        ...

    def instantiate(self, compiled: object) -> Version:
        """Instances + ``init``; raises :class:`LoadError` or :class:`PluginFault`."""
        ...

    def revive(self, old: Version) -> Version:
        """Fresh instances of an already loaded version, ``init`` done."""
        ...


class Slot(Protocol):
    """The router of one plugin name: where calls go, and the lifecycle state."""

    @property
    def name(self) -> str: ...

    @property
    def current(self) -> Version | None: ...

    @property
    def state(self) -> State: ...

    def trigger(self, trigger: Trigger, reason: str | None = None) -> State: ...

    def drain(self, timeout: float) -> None:
        """Stop routing (new calls wait), wait for in-flight ones, interrupt after ``timeout``."""
        ...

    def install(self, version: Version | None) -> None:
        """Make ``version`` the one calls go to (None: the plugin is gone)."""
        ...

    def release(self) -> None:
        """Let waiting calls through to whatever is installed."""
        ...


class Committer(Protocol):
    def commit(self, name: str, version: Version | None) -> None:
        """Durably record ``version`` as active for ``name``; raises :class:`StateError`."""
        ...
