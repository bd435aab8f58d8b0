"""What ``status`` and ``show`` say about a plugin: the host's own view, completed with what
the daemon knows around it.

* ``version``/``sha256`` are the *active* version's, also while it is down (failed, or
  quarantined after a restart that could not start it); a plugin with no active version yet
  shows the candidate being started, and while that candidate is verified and compiled its
  state reads ``starting`` (not ``stopped``).
* ``candidates``: the version being brought in right now (``pending``), and every refused one
  (``rejected``, ``rolled_back``, ``failed``) with its reason, text and time.
* ``quarantine``: why it is quarantined (the budget, and the text of the last failure).

Read from any thread (control requests, scrapes): every map read here is only ever replaced
or changed one key at a time by the daemon loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from forgeoned.core.desired import Candidate
from forgeoned.core.lifecycle import State
from forgeoned.core.stats import CandidateStatus, CandidateView, PluginView
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.refusals import Refusals


class PluginStatus:
    def __init__(
        self,
        plugins: PluginTable,
        active: ActiveSet,
        refusals: Refusals,
        targets: Mapping[str, Candidate],
        directory: PluginDirectory,
    ) -> None:
        self._directory = directory  # the signers of a version that never ran here
        self._plugins = plugins
        self._active = active
        self._refusals = refusals
        self._targets = targets  # the reconciler's: the candidate each plugin's swap tried

    def views(self) -> list[PluginView]:
        return [self._complete(h) for h in sorted(self._plugins.all(), key=lambda h: h.name)]

    def view(self, name: str) -> PluginView:
        return self._complete(self._plugins.host(name))

    def _complete(self, host: PluginHost) -> PluginView:
        view = host.view()
        name = view.name
        refused = self._refusals.of(name)
        target = self._targets.get(name)
        current = host.current
        settled = target is None or target.sha256 == view.sha256
        if not refused and current is not None and settled and host.state is not State.QUARANTINED:
            return view  # runs what it was last asked to run, nothing refused: as it is
        st = self._active.current
        record = st.active.get(name)
        version, sha256, state = view.version, view.sha256, view.state
        if current is None and record is not None:
            version, sha256 = record.version, record.sha256
        elif current is None and target is not None and record is None:
            version, sha256 = target.version, target.sha256
        if current is None and target is not None and host.state is State.STOPPED:
            state = State.STARTING.value  # verified and compiled before it is started
        candidates = [
            CandidateView(r.version, r.sha256, CandidateStatus(r.kind.value), r.reason,
                          r.message, r.at, r.file)
            for r in reversed(refused)
        ]  # fmt: skip
        signers = view.signers
        if not signers and current is None and target is not None and target.sha256 == sha256:
            known = self._directory.known(target)
            signers = known[0].signers if known is not None else ()
        refused_shas = {r.sha256 for r in refused}
        if target is not None and target.sha256 not in refused_shas | {sha256}:
            file = "" if target.filename.startswith("@") else target.filename
            status = CandidateStatus.PENDING
            candidates.insert(0, CandidateView(target.version, target.sha256, status, file=file))
        return replace(
            view,
            version=version,
            sha256=sha256,
            state=state,
            signers=signers,
            candidates=tuple(candidates),
            quarantine=st.causes.get(name) if host.state is State.QUARANTINED else None,
        )
