"""Versions leaving service are stopped and unloaded in the background, never on the loop.

A swap or a removal hands the version it took out of service to :meth:`Retirer.retire` and
goes on at once: the version's ``stop`` and ``unload`` (each bounded by the operator's
``lifecycle_timeout_s``, see :mod:`forgeoned.adapters.wasm.version`) run on a thread of their
own, and what failed is audited (:mod:`forgeoned.core.retire`). So a plugin whose ``stop``
takes seconds holds neither the daemon loop (reloads, installs, the watchdog) nor the other
plugins. The daemon's shutdown waits for the retirements still running (:meth:`join`) and
interrupts them (:meth:`interrupt`) when its own bound is over.
"""

from __future__ import annotations

import logging
import threading

from forgeoned.core.ports import AuditSink
from forgeoned.core.retire import shut_down
from forgeoned.core.swap_ports import Version

log = logging.getLogger(__name__)


class Retirer:
    """Implements :class:`forgeoned.core.swap_ports.Retirer` with one thread per version."""

    def __init__(self, audit: AuditSink) -> None:
        self._audit = audit
        self._cond = threading.Condition()
        self._running: dict[int, Version] = {}  # the versions being retired, by id()
        self.retired = 0

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._running)

    def retire(self, name: str, version: Version) -> None:
        key = id(version)
        with self._cond:
            if key in self._running:
                return  # already on its way out
            self._running[key] = version
        thread = threading.Thread(
            target=self._run, args=(name, version), name=f"forgeoned-retire-{name}", daemon=True
        )
        thread.start()

    def _run(self, name: str, version: Version) -> None:
        try:
            shut_down(self._audit, name, version)
        except Exception:  # the per-version boundary: an audit failure must not leak a thread
            log.exception("plugin %s %s: shutting down failed", name, version.version)
        finally:
            with self._cond:
                self._running.pop(id(version), None)
                self.retired += 1
                self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait (bounded) until every retirement started so far is done; True if they are."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def wait_retired(self, count: int, timeout: float) -> bool:
        """Wait (bounded) until at least ``count`` retirements are done (tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.retired >= count, timeout)

    def interrupt(self) -> None:
        """Make the ``stop``/``unload`` calls still running trap now (shutdown is over)."""
        with self._cond:
            versions = list(self._running.values())
        for version in versions:
            version.interrupt()
