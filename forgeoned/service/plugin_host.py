"""The host of one plugin name: routes calls to the active version, holds them while it swaps.

A :class:`PluginHost` is the swapper's :class:`~forgeoned.core.swap_ports.Slot`: the state,
the installed version and the drain are its :class:`~forgeoned.service.plugin_slot.PluginSlot`
side; this module has the calls. Calls enter through its
:class:`~forgeoned.service.call_gate.CallGate`: at most one call per instance of the active
version (each instance is one wasmtime Store, used by one thread at a time; the version's pool
hands them out), the others waiting in arrival order while every instance is busy or while
the gate is closed (a drain, a pause, a start in progress), bounded by ``hold_timeout_s``. A
thread holding an instance runs the waiting calls on it itself, oldest first, before giving
it back (briefly: ``SERVE_WAITERS_S``; why in :mod:`forgeoned.service.call_gate`). In-flight
calls are counted so that a drain can wait for them and, after the drain timeout, interrupt
them.

Lifecycle answers: ``pause`` (``resume``) returning non-zero is the plugin's refusal, an
:class:`~forgeoned.errors.ApplicationError` for the caller; the plugin stays running (paused).
A trap in them is a fault, as for a call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from forgeoned.core.heartbeat import Heartbeat
from forgeoned.core.lifecycle import State, Trigger, transition
from forgeoned.core.ports import Clock
from forgeoned.core.stats import CALL_FUEL, PluginStats
from forgeoned.core.swap_ports import Instance, Version
from forgeoned.errors import (
    ApplicationError,
    PluginFault,
    PluginTrap,
    TrapKind,
    UnavailableError,
)
from forgeoned.service.call_gate import Waiter
from forgeoned.service.plugin_slot import Job, PluginSlot

__all__ = ["OnFault", "PluginHost"]

# How long a thread holding an instance goes on running the calls waiting in line (after its
# own) before it gives the instance to the next waiter: its own caller waits that much more.
SERVE_WAITERS_S: Final = 0.001

# Told (on the thread of the call) that a version faulted while running: the supervisor's cue.
OnFault = Callable[["PluginHost", Version, PluginFault], None]


class PluginHost(PluginSlot):
    def __init__(
        self,
        name: str,
        stats: PluginStats | None = None,
        hold_timeout_s: float = 30.0,
        on_fault: OnFault | None = None,
        clock: Clock | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        super().__init__(name, stats, clock, heartbeat)
        self.hold_timeout_s = hold_timeout_s
        self.on_fault = on_fault

    # --- calls ------------------------------------------------------------------------------

    def _run(
        self, job: Job, wait: bool, hold_s: float | None = None, hold_paused: bool = True
    ) -> bytes | None:
        """Run ``job`` on an instance of the active version, then the jobs waiting in line
        (see :mod:`forgeoned.service.call_gate`); None if skipped (``wait`` False, not running).
        A call waits at most ``hold_s`` (default ``hold_timeout_s``) for a free instance or
        an open gate; a paused plugin holds it only if ``hold_paused``."""
        hold = self.hold_timeout_s if hold_s is None else hold_s
        got = self._gate.enter(wait, hold, job, hold_paused)
        if got is None:
            return None
        if isinstance(got, Waiter):  # another thread ran it
            return got.outcome()
        return self._run_entered(got, job, serve_waiters=True)

    def _run_entered(self, version: Version, job: Job, serve_waiters: bool) -> bytes:
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

    def _serve_waiters(self, version: Version, instance: Instance) -> None:
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

    def call(self, data: bytes, wait_s: float | None = None, export: str = "handle") -> bytes:
        """Run ``handle`` (or the named function ``export``) on an instance of the active
        version. It waits through a swap (up to ``hold_timeout_s``) but not for a paused
        plugin (:class:`PluginPausedError`), unless ``wait_s`` is given: then it waits up to
        that long in any case, paused included."""
        used = 0  # the job may run on another thread (a waiter's): it reports the fuel here

        def job(inst: Instance) -> bytes:
            nonlocal used
            before = inst.fuel_consumed
            try:
                return inst.handle(data, export)
            finally:
                used = inst.fuel_consumed - before

        try:
            result = self._run(job, True, wait_s, wait_s is not None)
        finally:
            CALL_FUEL.fuel = used
        assert result is not None
        return result

    def call_now(self, data: bytes, longest_s: float) -> bytes | None:
        """Run ``handle`` if an instance is free now, no call waits and the version's call
        timeout is at most ``longest_s``; else None (never waits). It runs no waiting call
        after its own: its caller wants it short."""
        version = self._gate.try_enter()
        if version is None:
            return None
        if version.call_timeout_s > longest_s:
            self._gate.leave(version)
            return None
        used = 0

        def job(inst: Instance) -> bytes:
            nonlocal used
            before = inst.fuel_consumed
            try:
                return inst.handle(data)
            finally:
                used = inst.fuel_consumed - before

        try:
            return self._run_entered(version, job, serve_waiters=False)
        finally:
            CALL_FUEL.fuel = used

    def tick(self) -> bool:
        """Run ``tick`` if the plugin is running now (waits only for a busy instance, never
        for a closed gate); False if skipped."""

        def job(inst: Instance) -> bytes:
            inst.tick()
            return b""

        return self._run(job, False) is not None

    def _fault(self, version: Version, exc: PluginFault) -> None:
        gate = self._gate
        with gate.lock:
            interrupted = isinstance(exc, PluginTrap) and exc.kind is TrapKind.INTERRUPTED
            if interrupted and self._interrupting:
                return  # we stopped it on purpose (drain timeout)
            if version is not gate.current or gate.state is not State.RUNNING:
                return
            gate.state = transition(gate.state, Trigger.FAULT)
            self.record_error(exc.code, str(exc), self.clock.wall())
            gate.changed_locked()  # the calls waiting in line are refused
        if self.on_fault is not None:
            self.on_fault(self, version, exc)

    # --- pause / resume ---------------------------------------------------------------------

    def pause(self, drain_timeout: float) -> None:
        """Hold new calls, let in-flight ones finish, then call ``pause`` on every instance.
        If the plugin refuses (non-zero), it goes on running and the refusal is raised."""
        self.trigger(Trigger.PAUSE)
        self.drain(drain_timeout)
        version = self._gate.current
        try:
            if version is not None:
                version.pause()
        except ApplicationError:
            self.trigger(Trigger.RESUME)  # as it was: running, calls let through again
            self.release()
            raise
        except PluginFault as exc:
            self._lifecycle_fault(version, exc)
            raise

    def resume(self) -> None:
        """Call ``resume`` on every instance and let the held calls through. If the plugin
        refuses (non-zero), it stays paused and the refusal is raised."""
        with self._gate.lock:
            if self._gate.state is not State.PAUSED:
                transition(self._gate.state, Trigger.RESUME)  # raises IllegalTransition
        version = self._gate.current
        try:
            if version is not None:
                version.resume()
        except ApplicationError:
            raise  # still paused, the calls waiting for it still wait
        except PluginFault as exc:
            self._lifecycle_fault(version, exc)
            raise
        self.trigger(Trigger.RESUME)
        self.release()

    def _lifecycle_fault(self, version: Version | None, exc: PluginFault) -> None:
        self.record_error(exc.code, str(exc), self.clock.wall())
        self.trigger(Trigger.FAULT, exc.code)
        self.release()
        if self.on_fault is not None and version is not None:
            self.on_fault(self, version, exc)
