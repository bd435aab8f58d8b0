"""Verifying the audit chain from inside the daemon: once at start, then periodically.

The metric ``forgeone_audit_chain_ok`` and the ``ForgeonedAuditChainBroken`` alert read the
audit log's ``last_verify``; without a verification nobody would ever see a tampered line. The
check runs on its own thread (the audit log is thread-safe), never on the daemon loop.

A broken chain does not stop the daemon: refusing to start would let whoever can edit one
line of the log take the plugins down. It is logged loudly instead (once per breakage, and
again when the chain verifies as intact), shown in the sd_notify STATUS line and exported.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from forgeoned.core.audit_chain import VerifyResult
from forgeoned.errors import ForgeonedError

log = logging.getLogger("forgeoned.audit")


class Verifiable(Protocol):
    def verify(
        self, trusted_key: str | None = None, *, incremental: bool = False
    ) -> VerifyResult: ...


def describe(result: VerifyResult) -> str:
    if result.ok:
        return f"audit chain intact ({result.entries} entries)"
    return f"AUDIT CHAIN BROKEN at seq {result.first_bad_seq}: {result.why}"


class ChainWatch:
    """Runs ``audit.verify()`` at start and every ``interval_s`` (0: only at start): in full at
    start and every ``full_every``-th time, otherwise from the last verified checkpoint on."""

    def __init__(self, audit: Verifiable, interval_s: float, full_every: int = 144) -> None:
        self.audit = audit
        self.interval_s = interval_s
        self.full_every = max(1, full_every)
        self.last: VerifyResult | None = None
        self.runs = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="forgeoned-audit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def check(self, incremental: bool | None = None) -> VerifyResult | None:
        """One verification now (on the calling thread); logs a change of verdict.
        ``incremental`` None: as scheduled (the first and every ``full_every``-th in full)."""
        if incremental is None:
            incremental = self.runs % self.full_every != 0
        try:
            result = self.audit.verify(incremental=incremental)
        except (OSError, ForgeonedError) as exc:  # e.g. unreadable: keep watching
            log.error("audit chain verification could not run: %s", exc)  # noqa: TRY400
            result = None
        with self._cond:
            before, self.last = self.last, result if result is not None else self.last
            self.runs += 1
            self._cond.notify_all()
        if result is not None and not result.ok:
            if before is None or before.ok or before.first_bad_seq != result.first_bad_seq:
                log.critical("%s; the daemon keeps running, investigate now", describe(result))
        elif result is not None and before is not None and not before.ok:
            log.warning("%s again", describe(result))
        return result

    def wait_runs(self, count: int, timeout: float) -> bool:
        """Wait (bounded) until at least ``count`` verifications have finished."""
        with self._cond:
            return self._cond.wait_for(lambda: self.runs >= count or self._closed, timeout)

    def _run(self) -> None:
        self.check()
        while True:
            with self._cond:
                if self.interval_s <= 0:
                    self._cond.wait_for(lambda: self._closed)
                else:
                    self._cond.wait_for(lambda: self._closed, self.interval_s)
                if self._closed:
                    return
            self.check()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
