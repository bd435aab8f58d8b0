"""Staging evidence (``mode = "staging"``): what the daemon observed of each plugin version
since it went live here, for ``forgeonectl promote`` to sign.

Fed by the audit trail: an activation (``plugin.installed``/``plugin.upgraded``) of a new
sha256 starts a record with a snapshot of the plugin's counters; a failure, quarantine or
rollback counts as a failure. :meth:`StagingEvidence.of` then reports the counters since that
snapshot — calls by outcome, faults (calls that trapped: fuel, deadline, memory…), failures,
fuel, peak memory (a wasm memory only grows: the largest seen), the host calls used (denials
included) — and the time in staging, and whether the ``[staging]`` minimums are met.

The evidence survives a restart of the staging daemon: it is saved (``save``) whenever it is
read and when the daemon stops, and a version still running after a restart (restored, no
activation event) carries on from what was saved for the same sha256. What a crash loses is
only what was counted since the last save.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import Clock
from forgeoned.core.staging_policy import StagingPolicy
from forgeoned.core.stats import PluginStats
from forgeoned.core.trust import utc_text
from forgeoned.errors import NotFoundError, StagingReason, StateError

log = logging.getLogger("forgeoned")

_ACTIVATED: Final = frozenset({EventName.PLUGIN_INSTALLED, EventName.PLUGIN_UPGRADED})
_FAULTS: Final = frozenset(
    {EventName.PLUGIN_FAILED, EventName.PLUGIN_QUARANTINED, EventName.PLUGIN_ROLLED_BACK}
)
_ANSWERS: Final = frozenset({"ok", "error"})  # call outcomes that are not faults
Saved = dict[str, dict[str, Any]]  # name -> the record as last saved (see _Record.saved)


@dataclass(slots=True)
class _Record:
    version: str
    sha256: str
    since: float
    baseline: PluginStats  # this process's counters when the record (re)started
    failures: int = 0
    memory_peak: int = 0
    # counted by earlier processes: "export outcome" / "function outcome" -> n, and fuel
    carried_calls: dict[str, int] = field(default_factory=dict)
    carried_hostcalls: dict[str, int] = field(default_factory=dict)
    carried_fuel: int = 0

    def totals(self, now: PluginStats) -> tuple[Counter[str], Counter[str], int]:
        calls = Counter(self.carried_calls)
        calls.update({f"{e} {o}": n for (e, o), n in now.calls.items()})
        calls.subtract({f"{e} {o}": n for (e, o), n in self.baseline.calls.items()})
        hostcalls = Counter(self.carried_hostcalls)
        hostcalls.update({f"{f} {o}": n for (f, o), n in now.hostcalls.items()})
        hostcalls.subtract({f"{f} {o}": n for (f, o), n in self.baseline.hostcalls.items()})
        fuel = self.carried_fuel + now.fuel_consumed - self.baseline.fuel_consumed
        return +calls, +hostcalls, fuel

    def saved(self, now: PluginStats) -> dict[str, Any]:
        calls, hostcalls, fuel = self.totals(now)
        return {
            "version": self.version, "sha256": self.sha256, "since": self.since,
            "failures": self.failures, "memory_peak": self.memory_peak,
            "calls": dict(calls), "hostcalls": dict(hostcalls), "fuel": fuel,
        }  # fmt: skip

    @classmethod
    def resumed(cls, raw: dict[str, Any]) -> _Record:
        """A record saved by an earlier process, carried on in this one (fresh counters)."""
        return cls(
            str(raw["version"]), str(raw["sha256"]), float(raw["since"]), PluginStats(),
            int(raw.get("failures", 0)), int(raw.get("memory_peak", 0)),
            dict(raw.get("calls", {})), dict(raw.get("hostcalls", {})), int(raw.get("fuel", 0)),
        )  # fmt: skip


class StagingEvidence:
    def __init__(
        self,
        clock: Clock,
        stats_of: Callable[[str], PluginStats],
        policy: Callable[[], StagingPolicy],
        saved: Saved | None = None,
        save: Callable[[Saved], None] | None = None,
    ) -> None:
        self._clock = clock
        self._stats_of = stats_of
        self._policy = policy
        self._saved: Saved = dict(saved or {})
        self._save = save
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def observe(self, event: AuditEvent) -> None:
        name, sha = event.plugin, event.sha256
        if name is None:
            return
        with self._lock:
            rec = self._records.get(name)
            if event.event in _ACTIVATED and sha and (rec is None or rec.sha256 != sha):
                earlier = self._saved.get(name)
                if earlier is not None and earlier.get("sha256") == sha:
                    rec = _Record.resumed(earlier)  # the same bytes, back after a restart
                    rec.baseline = self._stats_of(name).totals()
                else:
                    rec = _Record(event.version or "", sha, self._clock.wall(),
                                  self._stats_of(name).totals())  # fmt: skip
                self._records[name] = rec
            elif event.event in _FAULTS and rec is not None and sha in (None, rec.sha256):
                rec.failures += 1

    def _record(self, name: str, sha256: str) -> _Record:
        rec = self._records.get(name)
        if rec is not None and rec.sha256 == sha256:
            return rec
        earlier = self._saved.get(name)
        if rec is None and earlier is not None and earlier.get("sha256") == sha256:
            rec = self._records[name] = _Record.resumed(earlier)  # restored at start
            return rec
        raise NotFoundError(f"no staging evidence for {name!r} {sha256[:16]}… (not activated "
                            "while this daemon was in staging mode)")  # fmt: skip

    def of(self, name: str, sha256: str, memory_bytes: int) -> dict[str, Any]:
        """The evidence of ``name``'s running version (``sha256``); NotFoundError if none."""
        with self._lock:
            rec = self._record(name, sha256)
            rec.memory_peak = max(rec.memory_peak, memory_bytes)
            now_stats = self._stats_of(name).totals()
            calls, hostcalls, fuel = rec.totals(now_stats)
            self._saved[name] = rec.saved(now_stats)
            self._write()
            duration = self._clock.wall() - rec.since
            faults = sum(n for key, n in calls.items() if key.split()[-1] not in _ANSWERS)
            handled = sum(n for key, n in calls.items() if key.split()[0] == "handle")
            policy = self._policy()
            refusal: str | None = None
            if faults or rec.failures:
                refusal = StagingReason.FAULTED.value
            elif handled < policy.min_calls or duration < policy.min_seconds:
                refusal = StagingReason.INSUFFICIENT.value
            return {
                "plugin": name, "version": rec.version, "sha256": rec.sha256,
                "since": utc_text(rec.since), "duration_s": round(duration, 3),
                "calls": handled, "calls_by_outcome": dict(sorted(calls.items())),
                "faults": faults, "failures": rec.failures, "fuel_consumed": fuel,
                "memory_peak_bytes": rec.memory_peak, "hostcalls": dict(sorted(hostcalls.items())),
                "required": {"min_calls": policy.min_calls, "min_seconds": policy.min_seconds,
                             "valid_days": policy.valid_days},
                "promotable": refusal is None, "refusal": refusal,
            }  # fmt: skip

    def save_all(self) -> None:
        """Save every live record (the daemon stops)."""
        with self._lock:
            for name, rec in self._records.items():
                self._saved[name] = rec.saved(self._stats_of(name).totals())
            self._write()

    def _write(self) -> None:
        """Save; a state disk that refuses (full) costs only durability, never the answer."""
        if self._save is None:
            return
        try:
            self._save(dict(self._saved))
        except StateError as exc:
            log.warning("staging evidence not saved (kept in memory): %s", exc)
