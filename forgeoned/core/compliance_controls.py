"""Which controls forgeoned's evidence supports, and whether the evidence shows exceptions.

The mapping is deliberately conservative: a control is ``evidenced`` when the log shows the
mechanism working (or simply recording) over the period, ``exceptions`` when it shows events
an auditor must look at (unsigned code in development mode, downgrade overrides, a torn audit
line), and ``failed`` when the audit chain itself does not verify, because then no other
evidence from the log can be relied on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ControlEvidence:
    framework: str
    control: str
    title: str
    status: str  # "evidenced", "exceptions", "failed"
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Facts:
    """Counts the mapping needs, taken from the report's sections."""

    entries: int
    versions: int
    signed_versions: int
    unsigned_loads: int
    downgrades: int
    rejections: int
    signature_rejections: int
    hostcall_denials: int
    control_denials: int
    failures: int
    quarantines: int
    rollbacks: int
    operator_actions: int
    recoveries: int


def map_controls(chain: Mapping[str, Any], f: Facts) -> tuple[ControlEvidence, ...]:
    chain_ok = bool(chain.get("ok"))
    chain_text = (
        f"audit chain verified: {chain.get('entries', 0)} entries, "
        f"{chain.get('checkpoints_checked', 0)} signed checkpoints"
        if chain_ok
        else f"audit chain BROKEN at seq {chain.get('first_bad_seq')}: {chain.get('why', '')}"
    )
    signed = f"{f.signed_versions} of {f.versions} activated versions carry recorded signer keys"
    code = f"{f.rejections} artifacts rejected ({f.signature_rejections} for their signature)"
    unsigned = f"{f.unsigned_loads} unsigned loads (development mode)"
    sandbox = f"{f.hostcall_denials} host calls denied by capability"
    access = f"{f.control_denials} control requests denied by role"
    ops = f"{f.operator_actions} operator actions recorded with their actor"
    faults = f"{f.failures} plugin failures, {f.quarantines} quarantines, {f.rollbacks} rollbacks"
    downgrades = f"{f.downgrades} downgrade overrides"
    recovered = f"{f.recoveries} torn audit lines recovered"

    def status(*exceptions: int) -> str:
        if not chain_ok:
            return "failed"
        return "exceptions" if any(exceptions) else "evidenced"

    rows = [
        (
            "SOC 2",
            "CC6.1",
            "Logical access: only code signed by trusted keys runs; "
            "the control API is authorised per role",
            status(f.unsigned_loads),
            (signed, code, unsigned, access),
        ),
        (
            "SOC 2",
            "CC6.8",
            "Unauthorised or malicious software is prevented or detected",
            status(f.unsigned_loads),
            (code, unsigned, sandbox),
        ),
        (
            "SOC 2",
            "CC7.2",
            "System components are monitored for anomalies",
            status(f.recoveries),
            (faults, sandbox, chain_text, recovered),
        ),
        (
            "SOC 2",
            "CC7.3",
            "Security events are evaluated and responded to",
            status(),
            (faults, code),
        ),
        (
            "ISO 27001",
            "A.9.2.3",
            "Management of privileged access rights",
            status(f.downgrades),
            (ops, access, downgrades),
        ),
        (
            "ISO 27001",
            "A.9.4.1",
            "Information access restriction (capabilities, roles)",
            status(),
            (sandbox, access),
        ),
        (
            "ISO 27001",
            "A.12.1.2",
            "Change management: every version change recorded",
            status(f.downgrades),
            (signed, downgrades, ops),
        ),
        (
            "ISO 27001",
            "A.12.2.1",
            "Controls against malware",
            status(f.unsigned_loads),
            (code, unsigned, sandbox),
        ),
        (
            "ISO 27001",
            "A.12.4.1",
            "Event logging",
            status(f.recoveries),
            (f"{f.entries} audit entries in the period", chain_text),
        ),
        (
            "ISO 27001",
            "A.12.4.2",
            "Protection of log information",
            status(f.recoveries),
            (chain_text, recovered),
        ),
        ("ISO 27001", "A.12.4.3", "Administrator and operator logs", status(), (ops,)),
        (
            "ISO 27001",
            "A.12.5.1",
            "Installation of software on operational systems",
            status(f.unsigned_loads, f.downgrades),
            (signed, code, unsigned, downgrades),
        ),
        (
            "GDPR",
            "Art. 30",
            "Records of processing: which processing components (plugins and versions) ran when",
            status(),
            (f"{f.versions} version periods listed", signed),
        ),
        (
            "GDPR",
            "Art. 32",
            "Security of processing: integrity, isolation, detection and regular verification",
            status(f.unsigned_loads, f.recoveries),
            (sandbox, code, chain_text, faults),
        ),
    ]
    return tuple(ControlEvidence(*row) for row in rows)
