"""What the control facade (:class:`~forgeoned.daemon.facade.DaemonBackend`) needs of its
collaborators, each a Protocol of exactly what it uses: the plugin operations and the plugin
each names (:class:`Operations`, :class:`Callee`), the daemon loop (:class:`Runner`), what the
daemon refuses now (:class:`Refusals`), the audit log (:class:`AuditReader`) and its anchor
keeper (:class:`GapAcceptor`), the OCI sources (:class:`Sources`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from forgeoned.adapters.audit.follow import Followed
from forgeoned.core.audit_chain import VerifyResult
from forgeoned.core.desired import Candidate
from forgeoned.core.ports import InstallReport
from forgeoned.core.sources import SourceRecord, SyncResult
from forgeoned.core.stats import PluginView
from forgeoned.core.trust import TrustPolicy
from forgeoned.errors import ArtifactError
from forgeoned.service.plugin_index import Rejection

T = TypeVar("T")


class Callee(Protocol):
    def call(self, data: bytes, wait_s: float | None = None, export: str = "handle") -> bytes: ...

    def call_now(self, data: bytes, longest_s: float) -> bytes | None: ...


class Operations(Protocol):
    """The plugin operations (``PluginOperations``); ``actor`` goes into their audit events."""

    def views(self) -> list[PluginView]: ...

    def view(self, name: str) -> PluginView: ...

    def find(self, name: str) -> Callee | None: ...

    def install(
        self, cand: Candidate, data: bytes, detached: bytes | None, actor: str | None = None
    ) -> InstallReport: ...

    def refuse_upload(self, filename: str, error: ArtifactError, actor: str | None) -> None: ...

    def remove(self, name: str, actor: str | None = None) -> None: ...

    def pause(self, name: str, actor: str | None = None) -> None: ...

    def resume(self, name: str, actor: str | None = None) -> None: ...

    def restart(self, name: str, actor: str | None = None) -> None: ...

    def reset(self, name: str, actor: str | None = None) -> None: ...

    def retry(self, name: str, actor: str | None = None) -> PluginView | None: ...

    def allow_downgrade(self, name: str, version: str, actor: str) -> None: ...


class Runner(Protocol):
    """The daemon loop: ``call`` runs ``job`` there and returns its result (or raises;
    ``TimeoutError`` when it did not finish within ``timeout``: it still runs); ``post`` runs
    it later without waiting."""

    def call(self, job: Callable[[], T], timeout: float = ...) -> T: ...

    def post(self, job: Callable[[], None]) -> None: ...


class Refusals(Protocol):
    """What the daemon refuses now: the trust in force, the files it rejected."""

    @property
    def trust(self) -> TrustPolicy: ...

    def rejected(self) -> list[Rejection]: ...


class GapAcceptor(Protocol):
    """The audit log's anchor keeper: an admin accepts an open ``audit.gap``."""

    def accept(self, actor: str) -> dict[str, Any]: ...


class Sources(Protocol):
    """The OCI source follower (``forgeoned.service.sources.SourceFollower``)."""

    def views(self) -> list[dict[str, Any]]: ...

    def records(self) -> list[SourceRecord]: ...

    def sync(self, name: str, actor: str | None = None) -> SyncResult: ...


class AuditReader(Followed, Protocol):
    def entries(self, since: float | None = None) -> Iterable[dict[str, Any]]: ...

    def rotate_key(self, actor: str | None) -> dict[str, Any]: ...

    def verify(self) -> VerifyResult: ...
