"""Ports: the roles core logic needs from the outside world, implemented by adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

from forgeoned.core.artifact_file import ArtifactFile, FileKey
from forgeoned.core.events import AuditEvent
from forgeoned.core.policy import Target
from forgeoned.core.state import DaemonState
from forgeoned.core.stats import PluginView


class Clock(Protocol):
    """Time source. ``monotonic`` for durations and deadlines, ``wall`` for timestamps."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


class AuditSink(Protocol):
    """Receives audit events. ``record`` returns only once the event is durable."""

    def record(self, event: AuditEvent) -> None: ...


class AuditGate(Protocol):
    """Whether audit records can be written now; and marking the record an action waits for
    (one that must be durable before the action happens), so that its failure is counted as
    a refused action rather than a lost record."""

    @property
    def ok(self) -> bool: ...

    def precondition(self) -> AbstractContextManager[object]: ...

    def guard(self, action: Callable[[], None], what: str) -> None:
        """Run ``action``, whose first audit record is its precondition: refused (raising
        AuditUnavailableError) if that record cannot be written; standing if a later one
        cannot (counted as lost)."""
        ...


class StateRecord(Protocol):
    """The durable state (``StateStore``): ``commit`` returns once ``new`` is on disk and
    raises :class:`~forgeoned.errors.StateError` (the old state stays) otherwise."""

    @property
    def state(self) -> DaemonState: ...

    def commit(self, new: DaemonState) -> None: ...


class KeptCopies(Protocol):
    """A flat directory of whole files (the active versions' bytes, ``KeptCopiesDir``).

    ``write`` replaces a file by rename (never torn); ``durable=False`` leaves the sync to a
    later :meth:`sync` (a batch of writes, then one sync). Writes raise
    :class:`~forgeoned.errors.StateError`; ``read`` and ``delete`` never raise.
    """

    def exists(self, name: str) -> bool: ...

    def write(self, name: str, data: bytes, *, durable: bool = True) -> None: ...

    def read(self, name: str) -> bytes | None: ...

    def delete(self, name: str) -> None: ...

    def sync(self) -> None: ...


class PluginFiles(Protocol):
    """plugins.d as the plugin index reads it (``PluginFilesDir``).

    ``read`` raises :class:`FileNotFoundError` if the file is gone,
    :class:`~forgeoned.errors.FileChangedError` if it changed while being read, and an
    :class:`~forgeoned.errors.ArtifactError` for a file that must be rejected (a symlink,
    too large, unreadable).
    """

    def names(self) -> list[str]:
        """The artifact file names present (signatures and temporary files left out)."""
        ...

    def key(self, name: str) -> FileKey | None:
        """The identity of ``name`` and of its ``.sig`` without reading them (None: gone)."""
        ...

    def read(self, name: str, max_bytes: int) -> ArtifactFile: ...

    def write(self, name: str, data: bytes, detached: bytes | None = None) -> None:
        """Replace ``name`` atomically and durably (an upload through the control API), with
        ``detached`` as its ``.sig`` (written first), or without one (a stale ``.sig`` goes)."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name`` and its ``.sig`` (gone already is fine)."""
        ...


INSTALL_WAIT_S: Final = 120.0  # how long an install waits for its artifact's outcome
INSTALL_WAIT_MAX_S: Final = 600.0


@dataclass(frozen=True, slots=True)
class InstallReport:
    """What became of an uploaded artifact: ``running`` (its sha256 runs, ``view`` shows it),
    or not known yet (the caller did not wait, or not long enough). Every other outcome
    (rejected, rolled back, failed, another version selected) is raised as its error."""

    name: str
    version: str
    sha256: str
    running: bool
    view: PluginView | None = None


class ControlBackend(Protocol):
    """What the control API asks of the daemon. ``actor`` is who asked (for the audit log).

    Every method raises a :class:`forgeoned.errors.ForgeonedError` subclass on failure
    (``NotFoundError`` for an unknown plugin, ``ArtifactError`` for a rejected upload, …).
    """

    def list_plugins(self) -> list[PluginView]: ...

    def get_plugin(self, name: str) -> PluginView: ...

    def install(
        self,
        data: bytes,
        filename: str,
        actor: str,
        detached: bytes | None = None,
        wait_s: float = INSTALL_WAIT_S,
        attestation: bytes | None = None,
    ) -> InstallReport:
        """Verify ``data`` (with its detached signature and staging attestation, which are
        written beside it); if trusted write it into plugins.d
        and wait up to ``wait_s`` (0: not at all) for its outcome. Raises the error of an
        artifact that does not run (the code its audit event carries)."""
        ...

    def remove(self, name: str, actor: str) -> None: ...

    def pause(self, name: str, actor: str) -> None: ...

    def resume(self, name: str, actor: str) -> None: ...

    def restart(self, name: str, actor: str) -> None: ...

    def reset(self, name: str, actor: str) -> None:
        """Clear a quarantine and start the plugin's active version again."""
        ...

    def retry(self, name: str, actor: str) -> PluginView | None:
        """Let the refused candidates of ``name`` try again (now); raises the error of one
        that is refused again."""
        ...

    def allow_downgrade(self, name: str, version: str, actor: str) -> None: ...

    def invoke(
        self, name: str, data: bytes, wait_s: float | None = None, function: str = "handle"
    ) -> bytes:
        """``handle``'s output (or the named ``function``'s); a paused plugin fails at once
        unless ``wait_s`` is given (then the call waits up to that long for it, as for a
        busy one)."""
        ...

    def plugin_target(self, name: str, function: str | None) -> Target:
        """The attributes rule conditions see for a request about plugin ``name`` (its
        active version's signers and labels; empty for an unknown plugin)."""
        ...

    def invoke_now(self, name: str, data: bytes, longest_s: float) -> bytes | None:
        """Like :meth:`invoke` if an instance of ``name`` is free at once, no call waits for
        one and the plugin's call timeout is at most ``longest_s`` (so the call cannot take
        longer); else None, having done nothing (it never waits)."""
        ...

    def reload(self, actor: str) -> dict[str, Any]:
        """Reload the configuration; the answer says what was applied, what waits for a
        restart, which plugins were restarted and which keys are trusted now."""
        ...

    def trusted_keys(self) -> dict[str, Any]:
        """The trust in force: ``keys`` (each ``TrustedKey.describe()``) and ``revoked``."""
        ...

    def rejected_files(self) -> list[dict[str, Any]]:
        """The files in plugins.d refused now: file, plugin, version, reason, message."""
        ...

    def evidence(self, name: str) -> dict[str, Any]:
        """A staging daemon's evidence of ``name`` (what ``promote`` signs)."""
        ...

    def review(self, name: str, note: str, actor: str) -> dict[str, Any]:
        """Record ``plugin.reviewed``; the answer names the next due date."""
        ...

    def staging_report(self) -> list[dict[str, Any]]:
        """Per plugin, its staging evidence (observed here, or its attestation's)."""
        ...

    def reviews_overdue(self) -> list[dict[str, Any]]:
        """The plugins whose review is overdue, with the incidents since their last one."""
        ...

    def sources(self) -> list[dict[str, Any]]:
        """The OCI sources followed, each with its last sync (``SourceRecord.to_json``)."""
        ...

    def pull(self, name: str, actor: str) -> dict[str, Any]:
        """Sync source ``name`` now; raises its ``SourceError`` when the sync failed."""
        ...

    def audit_entries(self, since: float | None) -> Iterable[dict[str, Any]]:
        """Stored entries in order, read as they are consumed (the log may be large)."""
        ...

    def audit_verify(self) -> dict[str, Any]: ...

    def audit_accept_gap(self, actor: str) -> dict[str, Any]:
        """Accept the open ``audit.gap`` (the log is anchored where it is now); Conflict when
        there is none."""
        ...

    def audit_rotate_key(self, actor: str) -> dict[str, Any]:
        """Hand the checkpoint key over to a new one (the handover signed by the old key):
        ``{"old_key", "new_key", "seq"}``."""
        ...

    def audit_follow(
        self, from_seq: int | None, heartbeat_s: float | None = None
    ) -> Iterable[dict[str, Any] | None]:
        """Durable entries from ``from_seq`` (None: the next one) on, for ever; ``None`` when
        caught up and then every ``heartbeat_s`` (None: the log's default) while nothing new
        comes; a ``{"error": {...}}`` mapping ends the stream."""
        ...
