"""Which candidate of each plugin runs: the rule of docs/operations.md, over plugins.d and
the active set.

Of each name, the highest version in plugins.d that was not refused
(:mod:`forgeoned.service.refusals`) is the one to try (:meth:`WhatRuns.desired`,
:meth:`WhatRuns.selected`). Restarts, reloads and daemon restarts bring back the *active*
version, the last that came up (:meth:`WhatRuns.restart_target`), or, before any came up, the
first candidate again, until it runs or is quarantined; the daemon's start brings back the
active set the state records (:meth:`WhatRuns.at_start`). A plugin whose files in plugins.d
are all refused, or whose active version's file is there but failed to verify, keeps what
runs (:meth:`WhatRuns.source_rejected`); its removal is put down to the owner of that file
when no operator asked for it (:meth:`WhatRuns.last_owner`). These are questions only: the
:class:`~forgeoned.service.reconciler.Reconciler` acts on the answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from forgeoned.core.desired import Candidate, DesiredSet, desired_set
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_index import PluginDirectory
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.refusals import Refusals


@dataclass
class WhatRuns:
    directory: PluginDirectory
    active: ActiveSet
    refusals: Refusals
    plugins: PluginTable

    def desired(self, running: dict[str, str]) -> DesiredSet:
        """The desired set over the candidates that were not refused."""
        refusals = self.refusals
        cands = [c for c in self.directory.candidates() if (c.name, c.sha256) not in refusals]
        return desired_set(cands, running)

    def selected(self, name: str) -> Candidate | None:
        """The candidate of ``name`` plugins.d selects (the highest not refused)."""
        return self.desired(self.plugins.running()).wanted.get(name)

    def restart_target(self, name: str) -> Candidate | None:
        """What a restart brings back: the active version (from its file if plugins.d has
        it, else from the copy the state keeps); a plugin with no active version yet gets
        its candidate from plugins.d."""
        record = self.active.current.active.get(name)
        if record is None:
            return self.selected(name)
        filename = record.source or f"@state/{record.sha256}.wasm"
        return Candidate(name, record.version, record.sha256, filename)

    def at_start(self) -> list[Candidate]:
        """What the daemon's start brings back, by name: the active set the state records,
        and of a quarantined plugin that never ran, the candidate plugins.d selects."""
        restore = {c.name: c for c in self.active.persisted()}
        for name in self.active.current.quarantined - restore.keys():
            if (cand := self.selected(name)) is not None:
                restore[name] = cand
        return [restore[name] for name in sorted(restore)]

    def source_rejected(self, name: str) -> bool:
        """Whether the file the active version came from is present but failed to verify."""
        record = self.active.current.active.get(name)
        entry = self.directory.entries.get(record.source) if record is not None else None
        return entry is not None and entry.error is not None

    def last_owner(self, name: str) -> str | None:
        """Who owned the file the active version of ``name`` came from (its removal's actor
        when no operator asked for it)."""
        record = self.active.current.active.get(name)
        return self.directory.actor_of(record.source) if record is not None else None
