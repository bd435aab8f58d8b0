"""The reconciler's swaps: one candidate into one plugin host, and what follows from it.

Every swap the reconciler makes (a change in plugins.d, a restart, the daemon's start, an
operator's action) goes through :meth:`Swaps.bring_up`, which remembers the candidate it
tried (:attr:`Swaps.targets`: the status shows a candidate being started) and the result
(:attr:`Swaps.last`: an install reports it), and deals with the outcome as for any swap: a
failure of the candidate itself is judged by the refusals (a candidate that must not be tried
again) and recorded as the plugin's last error; a plugin left FAILED goes to the restart
schedule; a name under which nothing ever ran is forgotten. :meth:`Swaps.withdraw` takes a
plugin out for good. Everything here runs on the daemon loop, like the reconciler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forgeoned.core.desired import Candidate
from forgeoned.core.lifecycle import State
from forgeoned.core.ports import Clock
from forgeoned.core.swap_outcome import Outcome, SwapResult
from forgeoned.core.swapper import Swapper
from forgeoned.errors import ForgeonedError, StateError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_host import PluginHost
from forgeoned.service.plugin_table import PluginTable
from forgeoned.service.refusals import Refusals
from forgeoned.service.restarts import RestartSchedule


@dataclass
class Swaps:
    swapper: Swapper[Any, Any]  # the loader's intermediate types are the swapper's business
    plugins: PluginTable
    active: ActiveSet
    refusals: Refusals
    restarts: RestartSchedule
    clock: Clock
    # The candidate each plugin's latest swap brought up or tried (any thread reads it: the
    # status shows a candidate being started), and that swap's result (install reads it).
    targets: dict[str, Candidate] = field(default_factory=dict)
    last: dict[str, tuple[Candidate, SwapResult]] = field(default_factory=dict)

    def bring_up(
        self, host: PluginHost, cand: Candidate, quiet: bool = False, actor: str | None = None
    ) -> SwapResult:
        """Swap ``cand`` into ``host`` and deal with the outcome as any swap's."""
        result = self._swap(host, cand, quiet=quiet, actor=actor)
        self._after(host, cand, result)
        return result

    def _swap(
        self, host: PluginHost, cand: Candidate, quiet: bool = False, actor: str | None = None
    ) -> SwapResult:
        self.targets[host.name] = cand
        result = self.swapper.swap(host, cand, quiet=quiet, actor=actor)
        self.last[host.name] = (cand, result)
        return result

    def _after(self, host: PluginHost, cand: Candidate, result: SwapResult) -> None:
        error = result.error
        if error is not None and not isinstance(error, StateError):  # not its own fault
            active = self.active.active_sha256(host.name)
            text = self.refusals.judge(cand, result.outcome, error, active)
            host.record_error(error.code, text, self.clock.wall())
        if result.outcome is Outcome.FAILED:
            self.failed(host)
        if result.outcome is Outcome.REJECTED and host.state is State.STOPPED and not host.current:
            self.plugins.pop(host.name)  # nothing ever ran under this name
            self.targets.pop(host.name, None)

    def failed(self, host: PluginHost) -> None:
        """``host`` is FAILED: the restart schedule restarts it later, or quarantines it."""
        v = host.current or self.targets.get(host.name)
        self.restarts.failed(
            host, v.version if v is not None else None, v.sha256 if v is not None else None
        )

    def withdraw(self, host: PluginHost, actor: str | None = None) -> None:
        """Stop, unload and forget a plugin; if that fails (its state cannot be written) the
        host is put back, so that the next reconcile tries again."""
        name = host.name
        # New calls see "no such plugin" from now on; in-flight ones finish (drain).
        self.plugins.pop(name)
        self.restarts.cancel(name)
        try:
            self.swapper.remove(host, actor)
        except ForgeonedError:
            self.plugins.put(host)
            raise
        self.restarts.forget(name)
        self.targets.pop(name, None)
        self.refusals.forget(name)  # a plugin installed again later starts with a clean slate
