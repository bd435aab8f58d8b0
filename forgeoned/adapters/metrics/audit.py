"""What the metrics show about the audit log: its chain and whether it can be written."""

from __future__ import annotations

from typing import Protocol

from forgeoned.adapters.metrics.family import Family
from forgeoned.core.audit_chain import VerifyResult


class AuditHealth(Protocol):
    """What the metrics show about the audit log (``AuditLog`` implements it)."""

    @property
    def last_verify(self) -> VerifyResult | None: ...

    @property
    def head_seq(self) -> int: ...

    @property
    def write_failures(self) -> int: ...


class AuditWrites(Protocol):
    """Whether audit records can be written now (``adapters.audit.outage.Outage``)."""

    @property
    def ok(self) -> bool: ...

    @property
    def lost_total(self) -> int: ...

    @property
    def refused_total(self) -> int: ...


def audit_families(audit: AuditHealth) -> list[Family]:
    out: list[Family] = []
    result = audit.last_verify
    if result is not None:
        ok = Family("forgeone_audit_chain_ok", "gauge", "1 if the last verification passed")
        ok.add((), 1 if result.ok else 0)
        checked = Family(
            "forgeone_audit_chain_verified_entries", "gauge", "Entries checked last time"
        )
        checked.add((), result.entries)
        out += [ok, checked]
    head = Family("forgeone_audit_head_seq", "gauge", "Seq of the newest audit entry")
    head.add((), audit.head_seq)
    failures = Family("forgeone_audit_write_failures", "counter", "Failed audit writes")
    failures.add((), audit.write_failures)
    return [*out, head, failures]


def write_families(writes: AuditWrites) -> list[Family]:
    ok = Family(
        "forgeone_audit_write_ok",
        "gauge",
        "1 while audit records can be written; 0 while state changes are refused for lack of it",
    )
    ok.add((), 1 if writes.ok else 0)
    unwritten = Family(
        "forgeone_audit_records_unwritten",
        "counter",
        "Audit records the disk refused: lost (it happened) or refused (the action did not)",
        ("outcome",),
    )
    unwritten.add(("lost",), writes.lost_total)
    unwritten.add(("refused",), writes.refused_total)
    return [ok, unwritten]
