"""``install``: an uploaded artifact either runs, or leaves plugins.d as it was.

The control API verifies the upload first (off the loop); a refusal there is reported here as
a dropped file's would be (``plugin.rejected``, counted by reason) and nothing is written.
A verified upload is written into plugins.d (with its detached signature, if any) and
reconciled at once, on the loop; :meth:`Installer.install` then tells what became of *that*
sha256:

* it runs (or is paused) → :class:`~forgeoned.core.ports.InstallReport` ``running``;
* it is the bytes of a failed plugin waiting for its restart → not known yet;
* anything else raises, after the file is taken out of plugins.d again (the valid file it
  replaced, if any, is written back): rejected, rolled back, failed (the swap's error: its code
  is the audit event's reason), or not selected because another file of the plugin has a
  higher version (``downgrade`` when it is below what ran already, audited as the swap would
  have; else ``conflict``) or the same version with other bytes (``downgrade``).
  A quarantined plugin's own bytes stay (they are its active version): ``reset`` it.

Installing bytes that were refused before is an admin asking for exactly them: they are tried
again (their refusal is forgotten first).
"""

from __future__ import annotations

from dataclasses import dataclass

from forgeoned.core.desired import Candidate
from forgeoned.core.lifecycle import State
from forgeoned.core.ports import InstallReport
from forgeoned.core.rollback import check_rollback
from forgeoned.errors import ArtifactError, ConflictError, ForgeonedError, RollbackError
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_status import PluginStatus
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.reconciler import Reconciler
from forgeoned.service.rejections import RejectionReport


class Installer:
    def __init__(
        self,
        reconciler: Reconciler,
        directory: PluginDirectory,
        plugins: PluginTable,
        status: PluginStatus,
        rejections: RejectionReport,
    ) -> None:
        self._reconciler = reconciler
        self._directory = directory
        self._plugins = plugins
        self._status = status
        self._rejections = rejections

    def refused(self, filename: str, error: ArtifactError, actor: str | None) -> None:
        """The upload failed verification (nothing was written)."""
        self._rejections.upload(filename, error, actor)

    def install(
        self, cand: Candidate, data: bytes, detached: bytes | None, actor: str | None
    ) -> InstallReport:
        """Write the verified upload ``cand`` (its ``filename`` in plugins.d) and bring it in."""
        rec, name = self._reconciler, cand.name
        entry = self._directory.entries.get(cand.filename)
        if entry is not None and entry.candidate is not None and entry.candidate.name != name:
            other = entry.candidate.name
            raise ConflictError(f"{cand.filename} holds plugin {other!r}: choose another name")
        previous = self._directory.known_file(cand.filename)
        rec.refusals.forget(name, cand.sha256)
        rec.swaps.last.pop(name, None)
        self._directory.write(cand.filename, data, detached)
        rec.files_changed({cand.filename}, actor=actor)
        outcome = self._outcome(cand, actor)
        if isinstance(outcome, InstallReport):
            return outcome
        if not outcome.keep:
            self._undo(cand.filename, previous, actor)
            outcome.error.add_note(f"{cand.filename} was taken out of plugins.d again")
        raise outcome.error

    def _outcome(self, cand: Candidate, actor: str | None) -> InstallReport | _Refused:
        rec, name = self._reconciler, cand.name
        host = self._plugins.get(name)
        last = rec.swaps.last.get(name)
        if last is not None and last[0].sha256 == cand.sha256 and last[1].error is not None:
            error = last[1].error
            error.add_note(f"{name} {cand.version} {last[1].outcome.value}")
            return _Refused(error)
        identity = host.current.sha256 if host is not None and host.current else None
        if host is not None and identity is None and (t := rec.swaps.targets.get(name)) is not None:
            identity = t.sha256
        if host is not None and identity == cand.sha256:
            if host.state in (State.RUNNING, State.PAUSED):
                view = self._status.view(name)
                return InstallReport(name, cand.version, cand.sha256, True, view)
            if host.state is State.QUARANTINED:
                reset = f"{name} {cand.version} is quarantined: `forgeonectl reset {name}`"
                return _Refused(ConflictError(reset), keep=True)  # its active version's file
            if host.state is State.FAILED and rec.restarts.waiting(name):
                return InstallReport(name, cand.version, cand.sha256, False)
        entry = self._directory.entries.get(cand.filename)
        if entry is not None and entry.error is not None:
            return _Refused(entry.error)  # changed under us, and the new bytes do not verify
        if entry is None:
            return _Refused(ConflictError(f"{cand.filename} changed while it was installed"))
        winner = rec.what_runs.selected(name)
        if winner is not None and winner.version == cand.version:
            same = f"{name} {cand.version}: same version as the one running, other bytes"
            return _Refused(RollbackError(same))
        st = rec.active.current
        active = st.active.get(name)
        try:  # below what ran already: a downgrade, refused as the swap would refuse it
            check_rollback(name, cand.version, cand.sha256, st.floors, st.overrides,
                           active.sha256 if active is not None else None)  # fmt: skip
        except RollbackError as exc:
            self._rejections.candidate(cand, exc, actor)
            return _Refused(exc)
        selected = f"{winner.version} ({winner.filename})" if winner is not None else "none"
        return _Refused(
            ConflictError(f"{name} {cand.version} was not started: plugins.d selects {selected}")
        )

    def _undo(self, filename: str, previous: tuple[bytes, bytes | None] | None,
              actor: str | None) -> None:  # fmt: skip
        if previous is None:
            self._directory.delete(filename)
        else:
            self._directory.write(filename, *previous)
        self._reconciler.files_changed({filename}, actor=actor)


@dataclass(frozen=True, slots=True)
class _Refused:
    error: ForgeonedError
    keep: bool = False  # the file stays: it holds the plugin's active version
