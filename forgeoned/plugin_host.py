"""The host of one plugin name: routes calls to the active version, holds them while it swaps.

A :class:`PluginHost` is the swapper's :class:`~forgeoned.core.swapper.Slot`. Calls enter
through a gate: while the gate is closed (a drain, a pause, a start in progress) they wait on
a condition, bounded by ``hold_timeout_s``; in-flight calls are counted so that a drain can
wait for them and, after the drain timeout, interrupt them. Each instance of a version is one
wasmtime Store, used by one thread at a time (the version's pool hands instances out).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final, Protocol, cast

from forgeoned.core.clock import SystemClock
from forgeoned.core.lifecycle import State, Trigger, transition
from forgeoned.core.ports import Clock
from forgeoned.core.stats import PluginStats, PluginView
from forgeoned.core.swap_ports import Version
from forgeoned.errors import ControlError, PluginFault, PluginTrap, TrapKind

INTERRUPT_GRACE_S: Final = 5.0
# States in which a waiting call has a chance to be served soon.
_TRANSIENT: Final = frozenset({State.STARTING, State.DRAINING, State.PAUSED})


class UnavailableError(ControlError):
    """The plugin exists but cannot take calls now (failed, quarantined, removed, timed out)."""

    reason = "unavailable"
    http_status = 503


class Instance(Protocol):
    def handle(self, data: bytes) -> bytes: ...

    def tick(self) -> None: ...


class RoutedVersion(Protocol):
    """What the host needs of a loaded version (see :class:`forgeoned.loader.LoadedVersion`)."""

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
        self._cond = threading.Condition()
        self._state = State.STOPPED
        self._current: RoutedVersion | None = None
        self._gate_closed = False
        self._inflight = 0
        self._held = 0
        self._interrupting = False
        self.last_error: str | None = None

    # --- Slot protocol ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> State:
        return self._state

    @property
    def current(self) -> RoutedVersion | None:
        return self._current

    def trigger(self, trigger: Trigger, reason: str | None = None) -> State:
        with self._cond:
            self._state = transition(self._state, trigger)
            if reason is not None:
                self.last_error = reason
            self._cond.notify_all()
            return self._state

    def wait_for(self, state: State, timeout: float) -> bool:
        """Block until the plugin is in ``state`` (bounded); True if it got there."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state is state, timeout)

    def wait_inflight(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` calls are running (bounded)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._inflight >= count, timeout)

    def wait_held(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` calls are held at the gate (bounded)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._held >= count, timeout)

    def drain(self, timeout: float) -> None:
        with self._cond:
            self._gate_closed = True
            if self._cond.wait_for(lambda: self._inflight == 0, timeout):
                return
            version = self._current
            self._interrupting = True
        try:
            if version is not None:
                version.interrupt()
            with self._cond:
                self._cond.wait_for(lambda: self._inflight == 0, INTERRUPT_GRACE_S)
        finally:
            with self._cond:
                self._interrupting = False

    def install(self, version: Version | None) -> None:
        with self._cond:
            self._current = cast(RoutedVersion | None, version)
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._gate_closed = False
            self._cond.notify_all()

    # --- calls ------------------------------------------------------------------------------

    def _enter(self, wait: bool) -> RoutedVersion | None:
        deadline = self.clock.monotonic() + self.hold_timeout_s
        with self._cond:
            while self._gate_closed or self._state is not State.RUNNING:
                held = self._gate_closed or self._state in _TRANSIENT
                remaining = deadline - self.clock.monotonic()
                if not wait:
                    return None
                if not held:
                    raise UnavailableError(f"plugin {self._name!r} is {self._state.value}")
                if remaining <= 0:
                    raise UnavailableError(
                        f"plugin {self._name!r} stayed {self._state.value} "
                        f"for {self.hold_timeout_s:g}s"
                    )
                self._held += 1
                self._cond.notify_all()
                try:
                    self._cond.wait(remaining)
                finally:
                    self._held -= 1
            version = self._current
            if version is None:  # pragma: no cover - RUNNING always has a version
                raise UnavailableError(f"plugin {self._name!r} has no version")
            self._inflight += 1
            self._cond.notify_all()
            return version

    def _leave(self) -> None:
        with self._cond:
            self._inflight -= 1
            if self._inflight == 0:
                self._cond.notify_all()

    def _run(self, version: RoutedVersion, body: Callable[[Instance], bytes]) -> bytes:
        try:
            instance = version.acquire(self.hold_timeout_s)
            if instance is None:
                raise UnavailableError(f"plugin {self._name!r}: every instance is busy")
            try:
                return body(instance)
            finally:
                version.give_back(instance)
        except PluginFault as exc:
            self._fault(version, exc)
            raise
        finally:
            self._leave()

    def call(self, data: bytes) -> bytes:
        """Run ``handle`` on an instance of the active version (waits through a swap)."""
        version = self._enter(wait=True)
        assert version is not None
        return self._run(version, lambda inst: inst.handle(data))

    def tick(self) -> bool:
        """Run ``tick`` if the plugin is running now (never waits); False if skipped."""
        version = self._enter(wait=False)
        if version is None:
            return False

        def body(inst: Instance) -> bytes:
            inst.tick()
            return b""

        self._run(version, body)
        return True

    def _fault(self, version: RoutedVersion, exc: PluginFault) -> None:
        if isinstance(exc, PluginTrap) and exc.kind is TrapKind.INTERRUPTED:
            with self._cond:
                if self._interrupting:
                    return  # we stopped it on purpose (drain timeout)
        with self._cond:
            if version is not self._current or self._state is not State.RUNNING:
                return
            self._state = transition(self._state, Trigger.FAULT)
            self.last_error = exc.code
            self._cond.notify_all()
        if self.on_fault is not None:
            self.on_fault(self, version, exc)

    # --- pause / resume ---------------------------------------------------------------------

    def pause(self, drain_timeout: float) -> None:
        """Hold new calls, let in-flight ones finish, then call ``pause`` on every instance."""
        self.trigger(Trigger.PAUSE)
        self.drain(drain_timeout)
        version = self._current
        try:
            if version is not None:
                version.pause()
        except PluginFault as exc:
            self.trigger(Trigger.FAULT, exc.code)
            self.release()
            if self.on_fault is not None and version is not None:
                self.on_fault(self, version, exc)
            raise

    def resume(self) -> None:
        """Call ``resume`` on every instance and let the held calls through."""
        with self._cond:
            if self._state is not State.PAUSED:
                transition(self._state, Trigger.RESUME)  # raises IllegalTransition
        version = self._current
        try:
            if version is not None:
                version.resume()
        except PluginFault as exc:
            self.trigger(Trigger.FAULT, exc.code)
            self.release()
            if self.on_fault is not None and version is not None:
                self.on_fault(self, version, exc)
            raise
        self.trigger(Trigger.RESUME)
        self.release()

    # --- views ------------------------------------------------------------------------------

    def view(self) -> PluginView:
        v = self._current
        return PluginView(
            name=self._name,
            version=v.version if v is not None else "",
            sha256=v.sha256 if v is not None else "",
            state=self._state.value,
            memory_bytes=v.memory_bytes if v is not None else 0,
            stats=self.stats,
            signers=v.signers if v is not None else (),
            last_error=self.last_error,
            limits=dict(v.limits) if v is not None else {},
            instances=v.instance_count if v is not None else 0,
        )
