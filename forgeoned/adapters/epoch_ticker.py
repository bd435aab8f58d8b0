"""The thread that drives wasmtime's epoch: one increment every ``interval_s``.

Epoch interruption is how a running wasm call notices its wall-clock deadline (and a host
``interrupt``) without the per-instruction cost of fuel checks: compiled code compares the
engine's epoch with the store's deadline at loop heads and function entries, and when the
deadline is reached wasmtime calls the store's epoch callback (see ``wasm_instance``).
"""

from __future__ import annotations

import threading

import wasmtime


class EpochTicker:
    """Increments ``engine``'s epoch every ``interval_s`` seconds until :meth:`stop`."""

    def __init__(self, engine: wasmtime.Engine, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"epoch interval must be positive, got {interval_s}")
        self._engine = engine
        self._interval = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forgeoned-epoch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Event.wait(timeout) is the ticker's clock: an increment can come late under load,
        # which only makes deadlines later, never earlier than asked for.
        while not self._stopping.wait(self._interval):
            self._engine.increment_epoch()

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
