"""The wall-clock deadline of a plugin's calls, and the host's interruption of them.

Both are decided by the Store's epoch callback, :meth:`EpochDeadline._on_epoch`: the Store's
epoch deadline is always "next tick", so wasmtime calls it at each tick of the engine's epoch
(:class:`~forgeoned.adapters.wasm.runtime.EpochTicker`) while wasm runs, and it either lets
the call continue one more tick or stops it because the call's deadline passed (DEADLINE) or
the host asked (INTERRUPTED). Arming a deadline is therefore a plain attribute write on the hot
path, and :meth:`~EpochDeadline.interrupt` from another thread only sets a flag the running
thread reads at its next tick.

:class:`EpochDeadline` is the base of :class:`~forgeoned.adapters.wasm.instance.PluginInstance`
rather than an object it holds, on purpose: its state is attributes of the instance itself,
which the instance's call path writes directly (an extra object would cost an attribute lookup
on every call, a visible share of a call of a few µs).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import wasmtime

from forgeoned.adapters.wasm import fastcall as fast
from forgeoned.errors import TrapKind

if TYPE_CHECKING:
    from forgeoned.adapters.wasm.hostlink import HostLink

_now: Final = time.perf_counter


class EpochDeadline:
    """The deadline state of one Store's calls and the epoch callback that enforces it.

    ``_deadline`` is when the running call must end (``perf_counter`` time), ``_calling``
    whether a call is running, ``_interrupt`` whether the host asked it to stop, and
    ``_stop_reason`` why this callback stopped it (taken by the trap that follows). The
    subclass arms them around each call and provides ``_link``, where a failure of the callback
    itself is left as a host error.
    """

    _link: HostLink

    def __init__(self, store: wasmtime.Store) -> None:
        """Install the epoch callback on ``store`` (last, once the instance is complete)."""
        self._deadline = 0.0
        self._calling = False
        self._interrupt = False
        self._stop_reason: TrapKind | None = None
        self._epoch_hook = fast.EpochCallback(self._on_epoch)
        fast.set_epoch_callback(store, self._epoch_hook)
        store.set_epoch_deadline(1)

    def _call_deadline(self) -> float:
        return self._deadline

    def _on_epoch(self, _ctx: Any, _data: Any, delta: Any, kind: Any) -> int:
        try:
            if self._interrupt:
                self._stop_reason = TrapKind.INTERRUPTED
                return int(fast.error_new(b"call interrupted by the host") or 0)
            if self._calling and _now() >= self._deadline:
                self._stop_reason = TrapKind.DEADLINE
                return int(fast.error_new(b"call exceeded its wall-clock deadline") or 0)
            delta[0] = 1
            kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
            return 0
        except BaseException as exc:  # never let an exception unwind through wasm frames
            self._link.host_error = exc
            return int(fast.error_new(b"epoch hook failed") or 0)

    def interrupt(self) -> None:
        """Make the running call (if any) trap with INTERRUPTED at the next epoch tick."""
        if self._calling:
            self._interrupt = True
