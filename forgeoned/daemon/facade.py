"""The daemon as the control API and the metrics collector see it.

:class:`DaemonBackend` implements :class:`~forgeoned.core.ports.ControlBackend` and
:class:`~forgeoned.adapters.metrics.model.MetricsSource` over a few narrow collaborators,
each typed by a Protocol of exactly what the facade uses (:mod:`~forgeoned.daemon.facade_ports`):
the plugin operations (:class:`forgeoned.service.operations.PluginOperations`), the daemon
loop (where every change of the running set runs, one at a time, after any swap in progress),
the verifier and the audit log. ``invoke`` and the views run on the caller's thread and only
touch plugin hosts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from forgeoned.adapters.audit.follow import DEFAULT_HEARTBEAT_S, FollowEnd, follow
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.desired import Candidate
from forgeoned.core.policy import Target
from forgeoned.core.ports import INSTALL_WAIT_S, InstallReport
from forgeoned.core.sources import SourceRecord, SyncOutcome
from forgeoned.core.stats import DaemonStats, PluginView
from forgeoned.daemon.facade_ports import (
    AuditReader,
    GapAcceptor,
    Operations,
    Refusals,
    Runner,
    Sources,
)
from forgeoned.daemon.stewardship import Stewardship
from forgeoned.errors import (
    ArtifactError,
    BadRequestError,
    ConflictError,
    ForgeonedError,
    NotFoundError,
    SourceError,
    StagingReason,
    SyncReason,
)

log = logging.getLogger("forgeoned")
_SAFE_FILE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.wasm$")


class DaemonBackend:
    def __init__(
        self,
        operations: Operations,
        loop: Runner,
        verify: Callable[[bytes, bytes | None, bytes | None], VerifiedArtifact],
        reload: Callable[[str | None], dict[str, Any]],
        audit_log: AuditReader,
        stats: DaemonStats,
        refusals: Refusals,
        anchor: GapAcceptor | None = None,
        sources: Sources | None = None,
    ) -> None:
        self._ops = operations
        self._loop = loop
        self._verify = verify
        self.write_attestation: Callable[[str, bytes], None] | None = None
        self.stewardship: Stewardship | None = None  # staging evidence, reviews
        self._reload = reload
        self._audit_log = audit_log
        self._stats = stats
        self._refusals = refusals
        self._anchor = anchor
        self._sources = sources

    # --- views ------------------------------------------------------------------------------

    def list_plugins(self) -> list[PluginView]:
        return self._ops.views()

    def plugin_views(self) -> list[PluginView]:
        return self._ops.views()

    def daemon_stats(self) -> DaemonStats:
        return self._stats

    def get_plugin(self, name: str) -> PluginView:
        return self._ops.view(name)

    # --- changes ----------------------------------------------------------------------------

    def install(
        self,
        data: bytes,
        filename: str,
        actor: str,
        detached: bytes | None = None,
        wait_s: float = INSTALL_WAIT_S,
        attestation: bytes | None = None,
    ) -> InstallReport:
        """Verify the upload here (a refusal is reported and counted on the loop; nothing is
        written), then write it and reconcile on the loop, waiting up to ``wait_s`` for what
        became of it (see :mod:`forgeoned.service.install`)."""
        name = filename.rsplit("/", 1)[-1]
        try:
            artifact = self._verify(data, detached, attestation)
        except ArtifactError as exc:
            refused = exc
            self._loop.call(lambda: self._ops.refuse_upload(name, refused, actor))
            raise
        m = artifact.manifest
        if not _SAFE_FILE.match(name):
            name = f"{m.name}-{m.version}.wasm"
        cand = Candidate(m.name, m.version, artifact.sha256, name)
        pending = InstallReport(m.name, m.version, artifact.sha256, running=False)

        def job() -> InstallReport:
            if attestation is not None and self.write_attestation is not None:
                self.write_attestation(name, attestation)  # first: the module is judged with it
            return self._ops.install(cand, data, detached, actor)

        if wait_s <= 0:
            self._loop.post(lambda: _logged(job))
            return pending
        try:
            return self._loop.call(job, timeout=wait_s)
        except TimeoutError:  # it goes on on the loop; its outcome is audited there
            return pending

    def remove(self, name: str, actor: str) -> None:
        self._loop.call(lambda: self._ops.remove(name, actor))

    def pause(self, name: str, actor: str) -> None:
        self._loop.call(lambda: self._ops.pause(name, actor))

    def resume(self, name: str, actor: str) -> None:
        self._loop.call(lambda: self._ops.resume(name, actor))

    def restart(self, name: str, actor: str) -> None:
        self._loop.call(lambda: self._ops.restart(name, actor))

    def reset(self, name: str, actor: str) -> None:
        self._loop.call(lambda: self._ops.reset(name, actor))

    def retry(self, name: str, actor: str) -> PluginView | None:
        return self._loop.call(lambda: self._ops.retry(name, actor))

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        self._loop.call(lambda: self._ops.allow_downgrade(name, version, actor))

    def invoke(
        self, name: str, data: bytes, wait_s: float | None = None, function: str = "handle"
    ) -> bytes:
        host = self._ops.find(name)
        if host is None:
            raise NotFoundError(f"no plugin named {name!r}")
        try:
            return host.call(data, wait_s, function)
        except NotFoundError as exc:  # no ``handle``, or a function the manifest lacks
            raise BadRequestError(str(exc)) from exc

    def plugin_target(self, name: str, function: str | None) -> Target:
        try:
            view = self._ops.view(name)
        except NotFoundError:
            return Target(function=function)
        signers = set(view.signers)
        signers |= {k.key_id.hex() for k in self._refusals.trust.keys if k.name in signers}
        return Target(function, frozenset(signers), view.labels)

    def invoke_now(self, name: str, data: bytes, longest_s: float) -> bytes | None:
        host = self._ops.find(name)
        if host is None:
            return None  # invoke() answers that
        try:
            return host.call_now(data, longest_s)
        except NotFoundError as exc:  # the plugin exports no ``handle``
            raise BadRequestError(str(exc)) from exc

    def reload(self, actor: str) -> dict[str, Any]:
        return self._loop.call(lambda: self._reload(actor))

    # --- trust and refusals -----------------------------------------------------------------

    def trusted_keys(self) -> dict[str, Any]:
        trust = self._refusals.trust
        return {
            "keys": [k.describe() for k in trust.keys],
            "revoked": sorted(pk.hex() for pk in trust.revoked),
            "thresholds": dict(trust.thresholds),
        }

    def rejected_files(self) -> list[dict[str, Any]]:
        return [
            {
                "file": r.filename,
                "plugin": r.error.plugin,
                "version": r.error.version,
                "manifest": "unverified" if r.error.claimed else None,
                "reason": r.error.code,
                "message": str(r.error),
            }
            for r in self._refusals.rejected()
        ]

    # --- staging evidence and reviews ----------------------------------------------------

    def _steward(self) -> Stewardship:
        if self.stewardship is None:
            raise ConflictError("staging evidence and reviews are not kept by this daemon")
        return self.stewardship

    def evidence(self, name: str) -> dict[str, Any]:
        return self._steward().evidence(self.get_plugin(name))

    def review(self, name: str, note: str, actor: str) -> dict[str, Any]:
        return self._steward().review(self.get_plugin(name), note, actor)

    def staging_report(self) -> list[dict[str, Any]]:
        return self._steward().staging_report(self.list_plugins())

    def reviews_overdue(self) -> list[dict[str, Any]]:
        return self._steward().overdue()

    def review_due(self) -> dict[str, float]:
        if self.stewardship is None:
            return {}
        return self.stewardship.review_due(v.name for v in self.list_plugins())

    # --- OCI sources ------------------------------------------------------------------------

    def sources(self) -> list[dict[str, Any]]:
        return self._sources.views() if self._sources is not None else []

    def source_records(self) -> list[SourceRecord]:
        return self._sources.records() if self._sources is not None else []

    def pull(self, name: str, actor: str) -> dict[str, Any]:
        """Sync ``name`` now, on the caller's thread (network I/O never runs on the loop);
        a failed sync raises its :class:`SourceError` after it was audited (with the
        daemon's staging reason when ``require_staging`` refused the artifact), a held one
        (the audit log cannot be written) :class:`AuditUnavailableError`."""
        if self._sources is None:
            raise NotFoundError(f"no source named {name!r} (no [[sources]] configured)")
        result = self._sources.sync(name, actor)
        if result.outcome is SyncOutcome.FAILED:
            reason = result.reason or SyncReason.REGISTRY_ERROR.value
            staging = {r.value: r for r in StagingReason}.get(reason)
            why = SyncReason.UNTRUSTED if staging is not None else SyncReason(reason)
            raise SourceError(f"source {name}: {result.message}", why, staging)
        return next(v for v in self._sources.views() if v["name"] == name)

    # --- audit ------------------------------------------------------------------------------

    def audit_entries(self, since: float | None) -> Iterable[dict[str, Any]]:
        return self._audit_log.entries(since)

    def audit_verify(self) -> dict[str, Any]:
        return self._audit_log.verify().to_dict()

    def audit_accept_gap(self, actor: str) -> dict[str, Any]:
        if self._anchor is None:
            raise ConflictError("this daemon keeps no audit anchor")
        return self._anchor.accept(actor)

    def audit_rotate_key(self, actor: str) -> dict[str, Any]:
        return self._audit_log.rotate_key(actor)

    def audit_follow(
        self, from_seq: int | None, heartbeat_s: float | None = None
    ) -> Iterator[dict[str, Any] | None]:
        reader = self._audit_log
        start = from_seq if from_seq is not None else reader.durable_seq + 1
        beat = heartbeat_s if heartbeat_s is not None else DEFAULT_HEARTBEAT_S
        for item in follow(reader, start, heartbeat_s=beat):
            yield item.to_dict() if isinstance(item, FollowEnd) else item


def _logged(job: Callable[[], InstallReport]) -> None:
    """An install nobody waits for: its refusal is audited, and logged here."""
    try:
        job()
    except ForgeonedError as exc:
        log.warning("install (not waited for): %s", exc)
