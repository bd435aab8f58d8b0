"""The ports of the swap protocol: what :mod:`forgeoned.core.swapper` needs from the world.

A :class:`Loader` turns a candidate file into a :class:`Version` (the runtime adapter), in
three steps whose intermediate values only the loader looks into (it is generic in them); a
:class:`Slot` is where calls for one plugin name go (the plugin host); a :class:`Committer`
makes the active set durable (the active set over the state store). A :class:`Version`
carries everything the others need of it (the host routes calls to its instances, the tick
scheduler reads its interval, the active set persists its :class:`KeptVersion`), so that no
one downstream has to know the loader's types. Unit tests implement all four with small fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from forgeoned.core.abi import LifecycleExport
from forgeoned.core.desired import Candidate
from forgeoned.core.lifecycle import State, Trigger
from forgeoned.core.state import KeptVersion
from forgeoned.errors import PluginFault


class Instance(Protocol):
    """One instance of a version (a wasmtime Store): used by one thread at a time."""

    def handle(self, data: bytes, export: str = "handle") -> bytes:
        """``export`` (``handle`` or a named function of the manifest) on ``data``."""
        ...

    def tick(self) -> None: ...

    @property
    def fuel_consumed(self) -> int:
        """The fuel this instance's calls used so far (a running total)."""
        ...


@dataclass(frozen=True, slots=True)
class ShutdownFault:
    """A ``stop`` or ``unload`` that returned non-zero or trapped while a version was taken
    out of service (recorded; the swap or removal goes on regardless)."""

    export: LifecycleExport
    error: PluginFault


class Version(Protocol):
    """One version of a plugin with its instances created and ``init`` done."""

    @property
    def version(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def signers(self) -> tuple[str, ...]: ...

    @property
    def limits(self) -> Mapping[str, int]: ...

    @property
    def capabilities(self) -> Mapping[str, Any]:
        """The capabilities it runs with (its manifest's, narrowed by the operator's policy),
        as ``Capabilities.to_json`` writes them."""
        ...

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """The manifest's labels, sorted (what ABAC rule conditions match)."""
        ...

    @property
    def instance_count(self) -> int: ...

    @property
    def memory_bytes(self) -> int: ...

    @property
    def call_timeout_s(self) -> float:
        """The longest one call may run (its ``call_timeout_ms``); read on every inline invoke,
        so it is a plain attribute in the runtime adapter."""
        ...

    @property
    def tick_interval_s(self) -> float:
        """Seconds between two ``tick`` calls (0: the plugin exports no ``tick``)."""
        ...

    @property
    def kept(self) -> KeptVersion:
        """What the active set persists when this version becomes active."""
        ...

    def start(self) -> None:
        """Call ``start`` on every instance; raises :class:`PluginFault`."""
        ...

    def pause(self) -> None:
        """Call ``pause`` on every instance. A non-zero status is the plugin's refusal:
        :class:`ApplicationError`, with every instance resumed again; a trap a PluginFault."""
        ...

    def resume(self) -> None:
        """Call ``resume`` on every instance; as :meth:`pause` (a refusal leaves them paused)."""
        ...

    def shutdown(self) -> Sequence[ShutdownFault]:
        """Call ``stop`` then ``unload`` on every instance, each within the operator's
        lifecycle bound, and free them; returns what failed, never raises. It may take that
        long: the daemon loop hands it to a :class:`Retirer` instead of calling it."""
        ...

    def revive(self) -> Version:
        """Fresh instances of this version (the same compiled module), ``init`` done; raises
        :class:`LoadError` or :class:`PluginFault`."""
        ...

    def acquire(self, timeout: float) -> Instance | None:
        """An idle instance (None: none within ``timeout``); hand it back with :meth:`give_back`."""
        ...

    def give_back(self, instance: Instance) -> None: ...

    def interrupt(self) -> None:
        """Stop every call running in this version's instances (a trap)."""
        ...


VerifiedT = TypeVar("VerifiedT")
CompiledT = TypeVar("CompiledT")


class Loader(Protocol[VerifiedT, CompiledT]):
    """Turns a candidate file into a :class:`Version`; each step raises on failure."""

    def verify(self, candidate: Candidate) -> VerifiedT:
        """Read, verify signature/manifest/rollback floor; raises :class:`ArtifactError`."""
        ...

    def details(self, verified: VerifiedT) -> dict[str, Any]:
        """What the audit events of this version record about its signature: at least
        ``signers`` (trusted key names) and ``signed`` (False: loaded in development mode)."""
        ...

    def compile(self, verified: VerifiedT) -> CompiledT:
        """Compiled module (cached); raises :class:`LoadError`."""
        ...

    def instantiate(self, compiled: CompiledT) -> Version:
        """Instances + ``init``; raises :class:`LoadError` or :class:`PluginFault`."""
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


class Retirer(Protocol):
    def retire(self, name: str, version: Version) -> None:
        """Take ``version`` (of plugin ``name``, out of service now) down for good: stop,
        unload and free it, and audit what failed; off the caller's thread if it can."""
        ...


class Committer(Protocol):
    def commit(self, name: str, version: Version | None) -> None:
        """Durably record ``version`` as active for ``name``; raises :class:`StateError`."""
        ...

    def active_sha256(self, name: str) -> str | None:
        """The hash of the version recorded as active for ``name`` (None: none is)."""
        ...
