"""Metric families of the OCI sources the daemon follows (one label value per configured
source; reasons from :class:`~forgeoned.errors.SyncReason`, or the
:class:`~forgeoned.errors.StagingReason` of a ``require_staging`` refusal)."""

from __future__ import annotations

from collections.abc import Callable

from forgeoned.adapters.metrics.family import Family
from forgeoned.core.sources import SourceRecord, SyncOutcome


def source_families(records: list[SourceRecord], reason: Callable[[str], str]) -> list[Family]:
    s = ("source",)
    success = Family(
        "forgeone_source_last_success_timestamp_seconds", "gauge",
        "Unix time of the source's last successful sync (synced or unchanged); 0 if none", s,
    )  # fmt: skip
    failing = Family(
        "forgeone_source_failing_since_timestamp_seconds", "gauge",
        "Unix time of the first failure in the current run of failures; 0 when the last sync "
        "succeeded", s,
    )  # fmt: skip
    up = Family("forgeone_source_up", "gauge", "1 when the last sync succeeded, else 0", s)
    syncs = Family("forgeone_source_syncs", "counter", "Syncs by outcome", (*s, "outcome"))
    failures = Family(
        "forgeone_source_sync_failures", "counter", "Failed syncs by reason", (*s, "reason")
    )
    for record in records:
        name = (record.config.name,)
        success.add(name, record.last_success or 0.0)
        failing.add(name, record.failing_since or 0.0)
        last = record.last
        ok = last is not None and last.outcome in (SyncOutcome.SYNCED, SyncOutcome.UNCHANGED)
        up.add(name, 1 if ok else 0)  # held (audit log not writable) is not up
        for outcome in SyncOutcome:
            syncs.add((*name, outcome.value), record.syncs.get(outcome.value, 0))
        tally: dict[str, int] = {}
        for why, n in record.failures.items():
            tally[reason(why)] = tally.get(reason(why), 0) + n
        for why, n in sorted(tally.items()):
            failures.add((*name, why), n)
    return [success, failing, up, syncs, failures]
