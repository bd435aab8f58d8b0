"""The daemon's verdict on one artifact, without running it (``forgeonectl check`` and
``verify``).

Every step is the daemon's own code, called the way the daemon calls it, so ``check``,
``verify`` and a running daemon cannot disagree:

1. :class:`~forgeoned.service.artifact_source.ArtifactVerifier` — signature (strict), trust,
   key scope, threshold and expiry, the manifest, the operator's ``[limits]`` ceilings, and
   (``require_staging``) the staging attestation;
2. :func:`~forgeoned.core.rollback.check_rollback` against the state directory's floors;
3. :func:`~forgeoned.adapters.wasm.module_source.load_module` — compiled in the limited worker,
   the ABI v1 exports/imports validated, the native code size against its ceiling;
4. :func:`~forgeoned.daemon.host_services.grant` — what the operator's capability policy
   takes away (the daemon still loads it; those host calls answer ``-2``: a warning).

A refusal is a finding with the audit reason the daemon would record (``error.code``); the
first refusal ends the check, as it ends a load.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from forgeoned.adapters.files.state_store import StateStore
from forgeoned.adapters.wasm.compile_worker import CompileWorkers, WorkerLimits
from forgeoned.adapters.wasm.module_source import load_module
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.ceilings import check_code_size
from forgeoned.core.clock import SystemClock
from forgeoned.core.manifest import Capabilities
from forgeoned.core.origins import intersect_all
from forgeoned.core.ports import Clock
from forgeoned.core.rollback import check_rollback
from forgeoned.core.trust import TrustPolicy
from forgeoned.daemon.config import Config
from forgeoned.daemon.host_services import grant
from forgeoned.errors import ArtifactError, FindingCode, LoadError
from forgeoned.service.artifact_source import ArtifactVerifier
from forgeoned.service.staging import Attestations


class Severity(enum.Enum):
    REJECT = "reject"  # the daemon refuses the artifact
    WARN = "warn"  # it runs, but not as the manifest asks


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # an audit reason (errors.py) or a FindingCode value
    severity: Severity
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity.value, "message": self.message}


@dataclass(slots=True)
class CheckReport:
    path: str
    sha256: str
    name: str | None = None
    version: str | None = None
    signers: tuple[str, ...] = ()
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # the steps that ran, in order

    @property
    def accepted(self) -> bool:
        return not any(f.severity is Severity.REJECT for f in self.findings)

    @property
    def reason(self) -> str | None:
        """The reason code of the refusal (None: accepted)."""
        return next((f.code for f in self.findings if f.severity is Severity.REJECT), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path, "name": self.name, "version": self.version,
            "sha256": self.sha256, "accepted": self.accepted, "reason": self.reason,
            "signers": list(self.signers), "checked": self.checked,
            "findings": [f.to_json() for f in self.findings],
        }  # fmt: skip

    def lines(self) -> list[str]:
        who = f"{self.name} {self.version}" if self.name else self.path
        head = "accepted" if self.accepted else f"rejected ({self.reason})"
        out = [f"{head}: {who} sha256={self.sha256}"]
        if self.signers:
            out.append(f"signed by {', '.join(self.signers)}")
        out += [f"{f.severity.value} {f.code}: {f.message}" for f in self.findings]
        out.append(f"checked: {', '.join(self.checked)}")
        return out


def capability_findings(requested: Capabilities, granted: Capabilities) -> list[Finding]:
    """What the manifest asks for and the operator's policy does not give (warnings)."""
    lost: list[str] = [
        flag for flag in ("log", "clock", "random")
        if getattr(requested, flag) and not getattr(granted, flag)
    ]  # fmt: skip
    lost += [f"env:{k}" for k in sorted(requested.env - granted.env)]
    lost += [f"secrets:{k}" for k in sorted(requested.secrets - granted.secrets)]
    if requested.kv_quota_bytes is not None and granted.kv_quota_bytes is None:
        lost.append("kv")
    elif requested.kv_quota_bytes != granted.kv_quota_bytes:
        lost.append(f"kv quota {requested.kv_quota_bytes} -> {granted.kv_quota_bytes}")
    if requested.metrics and not granted.metrics:
        lost.append("metrics")
    lost += [  # an origin the manifest asks for that manifest ∩ [http] grant leaves out
        f"http:{origin}" for origin in sorted(requested.http, key=str)
        if not intersect_all((origin,), granted.http)
    ]  # fmt: skip
    code = FindingCode.CAPABILITY_NOT_GRANTED.value
    return [
        Finding(code, Severity.WARN, f"{what}: not granted by the operator's policy "
                "(its host calls answer -2, denied)")
        for what in lost
    ]  # fmt: skip


def _reject(report: CheckReport, exc: ArtifactError | LoadError) -> CheckReport:
    report.findings.append(Finding(exc.code, Severity.REJECT, str(exc)))
    return report


def check_artifact(
    config: Config,
    trust: TrustPolicy,
    data: bytes,
    detached: bytes | None,
    *,
    path: str = "",
    clock: Clock | None = None,
    rollback: bool = True,
    attestations: Iterable[bytes] = (),
) -> CheckReport:
    """The verdict a daemon running ``config`` with ``trust`` gives ``data`` (``rollback``:
    against the floors of ``config.state_dir``; ``attestations``: the envelopes the daemon
    would find beside it)."""
    clock = clock or SystemClock()
    report = CheckReport(path, hashlib.sha256(data).hexdigest())
    found = list(attestations)
    attest = Attestations(config.staging, trust, lambda: found)
    verifier = ArtifactVerifier(trust, config.mode, config.limits, clock, attest)
    report.checked.append("signature")
    if config.staging.required:
        report.checked.append("staging")
    try:
        art: VerifiedArtifact = verifier(data, detached)
    except ArtifactError as exc:
        report.name, report.version = exc.plugin, exc.version
        return _reject(report, exc)
    m = art.manifest
    report.name, report.version, report.signers = m.name, m.version, art.signers
    if not art.signed and art.dev_reason is not None:
        report.findings.append(Finding(
            art.dev_reason.value, Severity.WARN,
            "accepted only because of development mode (production refuses it)",
        ))  # fmt: skip
    if rollback:
        report.checked.append("rollback")
        st = StateStore(config.state_dir).state
        active = st.active.get(m.name)
        try:
            check_rollback(
                m.name, m.version, art.sha256, st.floors, st.overrides,
                active.sha256 if active is not None else None,
            )  # fmt: skip
        except ArtifactError as exc:
            return _reject(report, exc)
    report.checked.append("abi")
    cl = config.compile
    workers = CompileWorkers(WorkerLimits(cl.cpu_seconds, cl.memory_bytes, cl.timeout_s, 1), None)
    try:
        with WasmtimeRuntime() as runtime:
            load_module(
                runtime, workers, art.module, art.sha256,
                lambda size: check_code_size(config.limits, m, size),
            )  # fmt: skip
    except (ArtifactError, LoadError) as exc:
        return _reject(report, exc)
    finally:
        workers.close()
    report.checked.append("capabilities")
    granted, _, _ = grant(config, m.name, m.capabilities)
    report.findings += capability_findings(m.capabilities, granted)
    return report
