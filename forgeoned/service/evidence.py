"""Staging evidence (``mode = "staging"``): what the daemon observed of each plugin version
since it went live here, for ``forgeonectl promote`` to sign.

Fed by the audit trail: an activation (``plugin.installed``/``plugin.upgraded``) of a new
sha256 starts a record with a snapshot of the plugin's counters; a failure, quarantine or
rollback counts as a failure. :meth:`StagingEvidence.of` then reports the counters since that
snapshot — calls by outcome, faults (calls that trapped: fuel, deadline, memory…), failures, fuel,
peak memory seen, the host calls used (denials included) — and the time in staging, and
whether the ``[staging]`` minimums are met. Kept in memory: a daemon restart starts the
evidence of what runs again (the attestation must describe what this process observed).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import Clock
from forgeoned.core.staging_policy import StagingPolicy
from forgeoned.core.stats import PluginStats
from forgeoned.core.trust import utc_text
from forgeoned.errors import NotFoundError, StagingReason

_ACTIVATED: Final = frozenset({EventName.PLUGIN_INSTALLED, EventName.PLUGIN_UPGRADED})
_FAULTS: Final = frozenset(
    {EventName.PLUGIN_FAILED, EventName.PLUGIN_QUARANTINED, EventName.PLUGIN_ROLLED_BACK}
)
_ANSWERS: Final = frozenset({"ok", "error"})  # call outcomes that are not faults


@dataclass(slots=True)
class _Record:
    version: str
    sha256: str
    since: float
    baseline: PluginStats
    failures: int = 0
    memory_peak: int = 0


class StagingEvidence:
    def __init__(
        self,
        clock: Clock,
        stats_of: Callable[[str], PluginStats],
        policy: Callable[[], StagingPolicy],
    ) -> None:
        self._clock = clock
        self._stats_of = stats_of
        self._policy = policy
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def observe(self, event: AuditEvent) -> None:
        name, sha = event.plugin, event.sha256
        if name is None:
            return
        with self._lock:
            rec = self._records.get(name)
            if event.event in _ACTIVATED and sha and (rec is None or rec.sha256 != sha):
                baseline = self._stats_of(name).totals()
                self._records[name] = _Record(event.version or "", sha, self._clock.wall(),
                                              baseline)  # fmt: skip
            elif event.event in _FAULTS and rec is not None and sha in (None, rec.sha256):
                rec.failures += 1

    def of(self, name: str, memory_bytes: int) -> dict[str, Any]:
        """The evidence of ``name``'s version in staging; NotFoundError when there is none."""
        with self._lock:
            rec = self._records.get(name)
            if rec is None:
                raise NotFoundError(f"no staging evidence for {name!r} (not activated here)")
            rec.memory_peak = max(rec.memory_peak, memory_bytes)
            now_stats = self._stats_of(name).totals()
            calls = Counter(now_stats.calls)
            calls.subtract(rec.baseline.calls)
            hostcalls = Counter(now_stats.hostcalls)
            hostcalls.subtract(rec.baseline.hostcalls)
            duration = self._clock.wall() - rec.since
            faults = sum(n for (_, out), n in calls.items() if out not in _ANSWERS)
            handled = sum(n for (export, _), n in calls.items() if export == "handle")
            policy = self._policy()
            refusal: str | None = None
            if faults or rec.failures:
                refusal = StagingReason.FAULTED.value
            elif handled < policy.min_calls or duration < policy.min_seconds:
                refusal = StagingReason.INSUFFICIENT.value
            return {
                "plugin": name, "version": rec.version, "sha256": rec.sha256,
                "since": utc_text(rec.since), "duration_s": round(duration, 3),
                "calls": handled,
                "calls_by_outcome": {f"{e} {o}": n for (e, o), n in sorted(calls.items()) if n},
                "faults": faults, "failures": rec.failures, "fuel_consumed":
                    now_stats.fuel_consumed - rec.baseline.fuel_consumed,
                "memory_peak_bytes": rec.memory_peak,
                "hostcalls": {f"{f} {o}": n for (f, o), n in sorted(hostcalls.items()) if n},
                "required": {"min_calls": policy.min_calls, "min_seconds": policy.min_seconds,
                             "valid_days": policy.valid_days},
                "promotable": refusal is None, "refusal": refusal,
            }  # fmt: skip
