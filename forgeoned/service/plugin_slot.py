"""The slot of one plugin name: its lifecycle state, the version installed, and the drain.

A :class:`PluginSlot` is the part of a plugin host that the swapper drives (the
:class:`~forgeoned.core.swap_ports.Slot` protocol): it moves the lifecycle state, installs a
version in the :class:`~forgeoned.service.call_gate.CallGate`, closes the gate and waits for
the calls in flight (a drain: after the drain timeout it interrupts them, and waits
``INTERRUPT_GRACE_S`` more; the daemon loop waits with the watchdog fed,
:mod:`forgeoned.core.heartbeat`), and opens it again. It also keeps the plugin's last error
and what the status shows of it (:meth:`PluginSlot.view`).

The calls themselves, pause and resume, and the faults they raise are
:class:`~forgeoned.service.plugin_host.PluginHost`'s, which builds on this class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from forgeoned.core.clock import SystemClock
from forgeoned.core.heartbeat import Heartbeat, wait_beating
from forgeoned.core.lifecycle import State, Trigger, transition
from forgeoned.core.ports import Clock
from forgeoned.core.stats import PluginStats, PluginView
from forgeoned.core.swap_ports import Instance, Version
from forgeoned.service.call_gate import CallGate

__all__ = ["INTERRUPT_GRACE_S", "Job", "PluginSlot"]

INTERRUPT_GRACE_S: Final = 5.0

Job = Callable[[Instance], bytes]


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the status shows of the last version installed, once it is gone (failed)."""

    version: str
    sha256: str
    signers: tuple[str, ...]
    limits: dict[str, int] = field(default_factory=dict)


class PluginSlot:
    def __init__(
        self,
        name: str,
        stats: PluginStats | None = None,
        clock: Clock | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._name = name
        self.stats = stats if stats is not None else PluginStats()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.heartbeat = heartbeat  # fed while a drain waits (the daemon loop's watchdog)
        self._gate: CallGate[Version, Job] = CallGate(name)
        self._interrupting = False  # a drain is interrupting the calls it waited for
        self.last_error: str | None = None  # the code (audit reasons carry it)
        self.last_error_text: str | None = None
        self.last_error_at: float | None = None  # wall clock
        self._facts: _Facts | None = None

    # --- Slot protocol ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> State:
        return self._gate.state

    @property
    def current(self) -> Version | None:
        return self._gate.current

    def trigger(self, trigger: Trigger, reason: str | None = None) -> State:
        gate = self._gate
        with gate.lock:
            gate.state = transition(gate.state, trigger)
            if reason is not None and reason != self.last_error:
                self.last_error, self.last_error_text = reason, reason
                self.last_error_at = self.clock.wall()
            gate.changed_locked()
            return gate.state

    def record_error(self, code: str, text: str, at: float) -> None:
        """The latest failure of this plugin: its code and the text an operator reads."""
        self.last_error, self.last_error_text, self.last_error_at = code, text, at

    def wait_for(self, state: State, timeout: float) -> bool:
        """Block until the plugin is in ``state`` (bounded); True if it got there."""
        return self._gate.watch(lambda: self._gate.state is state, timeout)

    def wait_inflight(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` calls are running (bounded)."""
        return self._gate.watch(lambda: self._gate.inflight >= count, timeout)

    def wait_held(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` calls wait at the gate (closed, or instances busy)."""
        return self._gate.watch(lambda: self._gate.waiting >= count, timeout)

    def drain(self, timeout: float) -> None:
        """Close the gate and wait (bounded: ``timeout``, then interrupt and
        ``INTERRUPT_GRACE_S``) until no call runs, beating the heartbeat meanwhile."""
        gate = self._gate
        with gate.lock:
            gate.closed = True
            version = gate.current

        def idle(seconds: float) -> bool:
            return gate.watch(lambda: gate.inflight == 0, seconds)

        if wait_beating(idle, timeout, self.heartbeat):
            return
        with gate.lock:
            self._interrupting = True
        try:
            if version is not None:
                version.interrupt()
            wait_beating(idle, INTERRUPT_GRACE_S, self.heartbeat)
        finally:
            with gate.lock:
                self._interrupting = False

    def install(self, version: Version | None) -> None:
        count = version.instance_count if version is not None else 0
        with self._gate.lock:
            self._gate.install_locked(version, count)
            if version is not None:
                self._facts = _Facts(
                    version.version, version.sha256, tuple(version.signers), dict(version.limits)
                )

    def release(self) -> None:
        gate = self._gate
        with gate.lock:
            gate.closed = False
            gate.changed_locked()

    # --- views ------------------------------------------------------------------------------

    def view(self) -> PluginView:
        """What the host itself knows; :mod:`forgeoned.service.plugin_status` adds the rest."""
        v = self._gate.current
        facts = self._facts
        if v is not None:
            facts = _Facts(v.version, v.sha256, tuple(v.signers), dict(v.limits))
        return PluginView(
            name=self._name,
            version=facts.version if facts is not None else "",
            sha256=facts.sha256 if facts is not None else "",
            state=self._gate.state.value,
            memory_bytes=v.memory_bytes if v is not None else 0,
            stats=self.stats.totals(),  # every instance's counters added up
            signers=tuple(facts.signers) if facts is not None else (),
            last_error=self.last_error_text,
            limits=dict(facts.limits) if facts is not None else {},
            instances=v.instance_count if v is not None else 0,
            last_error_code=self.last_error,
            last_error_at=self.last_error_at,
            capabilities=dict(v.capabilities) if v is not None else {},
            labels=v.labels if v is not None else (),
        )
