"""Reporting artifacts that must not run: each a ``plugin.rejected`` event and a count in
``DaemonStats.rejected[reason]``, once per version of a file (not at every rescan).

A rejection changes nothing, so one whose record the audit log cannot take (a full disk) is
still a rejection: the record is counted as lost in the next ``audit.gap``, and the rescan
that found it goes on."""

from __future__ import annotations

import contextlib

from forgeoned.core.desired import Candidate, Conflict
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import AuditSink
from forgeoned.core.stats import DaemonStats
from forgeoned.errors import ArtifactError, AuditError, RollbackError
from forgeoned.service.plugin_index import Rejection


class RejectionReport:
    def __init__(self, audit: AuditSink, stats: DaemonStats) -> None:
        self.audit = audit
        self.stats = stats
        self._conflicts: set[tuple[str, str]] = set()

    def files(self, rejections: list[Rejection]) -> None:
        """Files that failed to read or verify (the index reports each version once)."""
        for r in rejections:
            self.stats.rejected[r.error.code] += 1
            details: dict[str, object] = {"file": r.filename}
            if r.error.claimed:  # named from a manifest nobody vouched for
                details["manifest"] = "unverified"
            self._record(
                AuditEvent(
                    EventName.PLUGIN_REJECTED,
                    plugin=r.error.plugin,  # known whenever a manifest could be read
                    version=r.error.version,
                    reason=r.error.code,
                    message=f"{r.filename}: {r.error}",
                    details=details,
                )
            )

    def upload(self, filename: str, error: ArtifactError, actor: str | None) -> None:
        """An upload (``install``) that failed verification: nothing was written; reported
        and counted as a dropped file would be."""
        self.stats.rejected[error.code] += 1
        details: dict[str, object] = {"file": filename, "upload": True}
        if error.claimed:  # named from a manifest nobody vouched for, as for a dropped file
            details["manifest"] = "unverified"
        self.audit.record(
            AuditEvent(EventName.PLUGIN_REJECTED, plugin=error.plugin, version=error.version,
                       actor=actor, reason=error.code, message=f"{filename}: {error}",
                       details=details)
        )  # fmt: skip

    def candidate(self, cand: Candidate, error: ArtifactError, actor: str | None) -> None:
        """A verified candidate refused without a swap (an upload below the rollback floor
        while a higher version is selected)."""
        self.stats.rejected[error.code] += 1
        self.audit.record(
            AuditEvent(EventName.PLUGIN_REJECTED, plugin=cand.name, version=cand.version,
                       sha256=cand.sha256, actor=actor, reason=error.code,
                       message=f"{cand.filename}: {error}",
                       details={"file": cand.filename, "upload": True})
        )  # fmt: skip

    def conflict(self, conflict: Conflict) -> None:
        """Same name and version as the chosen file but other bytes: refused, once."""
        loser, winner = conflict.loser, conflict.winner
        if (loser.filename, loser.sha256) in self._conflicts:
            return
        self._conflicts.add((loser.filename, loser.sha256))
        self.stats.rejected[RollbackError.reason] += 1
        self._record(
            AuditEvent(
                EventName.PLUGIN_REJECTED,
                plugin=loser.name,
                version=loser.version,
                sha256=loser.sha256,
                reason=RollbackError.reason,
                message=f"{loser.filename}: same version as {winner.filename}, other bytes",
                details={"file": loser.filename},
            )
        )

    def _record(self, event: AuditEvent) -> None:
        with contextlib.suppress(AuditError):
            self.audit.record(event)
