"""The host of one plugin name: routes calls to the active version, holds them while it swaps.

A :class:`PluginHost` is the swapper's :class:`~forgeoned.core.swapper.Slot`. Calls enter
through its :class:`~forgeoned.service.call_gate.CallGate`: at most one call per instance of
the active version (each instance is one wasmtime Store, used by one thread at a time; the
version's pool hands them out), the others waiting in arrival order while every instance is
busy or while the gate is closed (a drain, a pause, a start in progress), bounded by
``hold_timeout_s``. A thread holding an instance runs the waiting calls on it itself, oldest
first, before giving it back (briefly: ``SERVE_WAITERS_S``; why in
:mod:`forgeoned.service.call_gate`). In-flight calls are counted so that a drain can wait for
them and, after the drain timeout, interrupt them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Protocol, cast

from forgeoned.core.clock import SystemClock
from forgeoned.core.lifecycle import State, Trigger, transition
from forgeoned.core.ports import Clock
from forgeoned.core.stats import PluginStats, PluginView
from forgeoned.core.swap_ports import Version
from forgeoned.errors import PluginFault, PluginTrap, TrapKind
from forgeoned.service.call_gate import CallGate, UnavailableError, Waiter

__all__ = ["INTERRUPT_GRACE_S", "Instance", "PluginHost", "RoutedVersion", "UnavailableError"]

INTERRUPT_GRACE_S: Final = 5.0
# How long a thread holding an instance goes on running the calls waiting in line (after its
# own) before it gives the instance to the next waiter: its own caller waits that much more.
SERVE_WAITERS_S: Final = 0.001

Job = Callable[["Instance"], bytes]


class Instance(Protocol):
    def handle(self, data: bytes) -> bytes: ...

    def tick(self) -> None: ...


class RoutedVersion(Protocol):
    """What the host needs of a loaded version (see
    :class:`forgeoned.adapters.wasm.loader.LoadedVersion`)."""

    @property
    def version(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def signers(self) -> tuple[str, ...]: ...

    @property
    def limits(self) -> dict[str, int]: ...

    @property
    def instance_count(self) -> int: ...

    @property
    def memory_bytes(self) -> int: ...

    def start(self) -> None: ...

    def shutdown(self) -> None: ...

    def acquire(self, timeout: float) -> Instance | None: ...

    def give_back(self, instance: Instance) -> None: ...

    def interrupt(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class PluginHost:
    def __init__(
        self,
        name: str,
        stats: PluginStats | None = None,
        hold_timeout_s: float = 30.0,
        on_fault: Callable[[PluginHost, RoutedVersion, PluginFault], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._name = name
        self.stats = stats if stats is not None else PluginStats()
        self.hold_timeout_s = hold_timeout_s
        self.on_fault = on_fault
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._gate: CallGate[RoutedVersion, Job] = CallGate(name)
        self._interrupting = False
        self.last_error: str | None = None

    # --- Slot protocol ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> State:
        return self._gate.state

    @property
    def current(self) -> RoutedVersion | None:
        return self._gate.current

    def trigger(self, trigger: Trigger, reason: str | None = None) -> State:
        gate = self._gate
        with gate.lock:
            gate.state = transition(gate.state, trigger)
            if reason is not None:
                self.last_error = reason
            gate.changed_locked()
            return gate.state

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
        gate = self._gate
        with gate.lock:
            gate.closed = True
            version = gate.current
        if gate.watch(lambda: gate.inflight == 0, timeout):
            return
        with gate.lock:
            self._interrupting = True
        try:
            if version is not None:
                version.interrupt()
            gate.watch(lambda: gate.inflight == 0, INTERRUPT_GRACE_S)
        finally:
            with gate.lock:
                self._interrupting = False

    def install(self, version: Version | None) -> None:
        routed = cast(RoutedVersion | None, version)
        with self._gate.lock:
            self._gate.install_locked(routed, routed.instance_count if routed is not None else 0)

    def release(self) -> None:
        gate = self._gate
        with gate.lock:
            gate.closed = False
            gate.changed_locked()

    # --- calls ------------------------------------------------------------------------------

    def _run(self, job: Job, wait: bool) -> bytes | None:
        """Run ``job`` on an instance of the active version, then the jobs waiting in line
        (see :mod:`forgeoned.service.call_gate`); None if skipped (``wait`` False, not running)."""
        got = self._gate.enter(wait, self.hold_timeout_s, job)
        if got is None:
            return None
        if isinstance(got, Waiter):  # another thread ran it
            return got.outcome()
        return self._run_entered(got, job, serve_waiters=True)

    def _run_entered(self, version: RoutedVersion, job: Job, serve_waiters: bool) -> bytes:
        """Run ``job`` on an instance of ``version``, which the gate granted (and counted)."""
        try:
            instance = version.acquire(self.hold_timeout_s)  # at once: the gate granted one
            if instance is None:
                raise UnavailableError(f"plugin {self._name!r}: every instance is busy")
            try:
                result = job(instance)
                if serve_waiters:
                    self._serve_waiters(version, instance)
                return result
            finally:
                version.give_back(instance)
        except PluginFault as exc:
            self._fault(version, exc)
            raise
        finally:
            self._gate.leave(version)

    def _serve_waiters(self, version: RoutedVersion, instance: Instance) -> None:
        gate = self._gate
        deadline = time.perf_counter() + SERVE_WAITERS_S
        while gate.waiting and (waiter := gate.next_for(version)) is not None:
            try:
                result = waiter.job(instance)
            except BaseException as exc:
                if isinstance(exc, PluginFault):
                    self._fault(version, exc)  # before its caller sees it, as for a call
                gate.served(waiter, b"", exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            gate.served(waiter, result, None)
            if time.perf_counter() >= deadline:
                return

    def call(self, data: bytes) -> bytes:
        """Run ``handle`` on an instance of the active version (waits through a swap)."""
        result = self._run(lambda inst: inst.handle(data), True)
        assert result is not None
        return result

    def call_now(self, data: bytes) -> bytes | None:
        """Run ``handle`` if an instance is free now and no call waits; else None (never
        waits). It runs no waiting call after its own: its caller wants it short."""
        version = self._gate.try_enter()
        if version is None:
            return None
        return self._run_entered(version, lambda inst: inst.handle(data), serve_waiters=False)

    def tick(self) -> bool:
        """Run ``tick`` if the plugin is running now (waits only for a busy instance, never
        for a closed gate); False if skipped."""

        def job(inst: Instance) -> bytes:
            inst.tick()
            return b""

        return self._run(job, False) is not None

    def _fault(self, version: RoutedVersion, exc: PluginFault) -> None:
        gate = self._gate
        with gate.lock:
            interrupted = isinstance(exc, PluginTrap) and exc.kind is TrapKind.INTERRUPTED
            if interrupted and self._interrupting:
                return  # we stopped it on purpose (drain timeout)
            if version is not gate.current or gate.state is not State.RUNNING:
                return
            gate.state = transition(gate.state, Trigger.FAULT)
            self.last_error = exc.code
            gate.changed_locked()  # the calls waiting in line are refused
        if self.on_fault is not None:
            self.on_fault(self, version, exc)

    # --- pause / resume ---------------------------------------------------------------------

    def pause(self, drain_timeout: float) -> None:
        """Hold new calls, let in-flight ones finish, then call ``pause`` on every instance."""
        self.trigger(Trigger.PAUSE)
        self.drain(drain_timeout)
        version = self._gate.current
        try:
            if version is not None:
                version.pause()
        except PluginFault as exc:
            self._lifecycle_fault(version, exc)
            raise

    def resume(self) -> None:
        """Call ``resume`` on every instance and let the held calls through."""
        with self._gate.lock:
            if self._gate.state is not State.PAUSED:
                transition(self._gate.state, Trigger.RESUME)  # raises IllegalTransition
        version = self._gate.current
        try:
            if version is not None:
                version.resume()
        except PluginFault as exc:
            self._lifecycle_fault(version, exc)
            raise
        self.trigger(Trigger.RESUME)
        self.release()

    def _lifecycle_fault(self, version: RoutedVersion | None, exc: PluginFault) -> None:
        self.trigger(Trigger.FAULT, exc.code)
        self.release()
        if self.on_fault is not None and version is not None:
            self.on_fault(self, version, exc)

    # --- views ------------------------------------------------------------------------------

    def view(self) -> PluginView:
        v = self._gate.current
        return PluginView(
            name=self._name,
            version=v.version if v is not None else "",
            sha256=v.sha256 if v is not None else "",
            state=self._gate.state.value,
            memory_bytes=v.memory_bytes if v is not None else 0,
            stats=self.stats.totals(),  # every instance's counters added up
            signers=v.signers if v is not None else (),
            last_error=self.last_error,
            limits=dict(v.limits) if v is not None else {},
            instances=v.instance_count if v is not None else 0,
        )
