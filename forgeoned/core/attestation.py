"""Staging attestations: an in-toto Statement v1 in a DSSE envelope, signed with Ed25519.

``forgeonectl promote`` binds a plugin's sha256 to what a ``mode = "staging"`` daemon observed
(calls, faults, fuel, memory, host calls, time in staging) and signs it; a production daemon
with ``[staging] require_staging = true`` loads an artifact only with such an attestation by a
key of the configured attester role. The same JSON as the ``in-toto-attestation`` package
would produce, written by hand (that package would add protobuf for three fields)::

    {"payloadType": "application/vnd.in-toto+json", "payload": base64(Statement),
     "signatures": [{"keyid": "<key fingerprint>", "sig": base64(Ed25519(PAE(...)))}]}

Pure: the Ed25519 primitive comes in through :class:`~forgeoned.core.signature.Ed25519Verifier`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from forgeoned.core.trust import TrustedKey, TrustPolicy, utc_text
from forgeoned.errors import StagingError, StagingReason

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
PREDICATE_TYPE: Final = "urn:forgeoned:predicate:staging-evidence:v1"
SUFFIX: Final = ".intoto.json"  # NAME.wasm.intoto.json, beside the artifact
MAX_ENVELOPE_BYTES: Final = 64 * 1024


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def statement(
    name: str, version: str, sha256: str, evidence: Mapping[str, Any], expires: float
) -> dict[str, Any]:
    """The in-toto Statement v1 of a promotion (``expires``: Unix time)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{name}@{version}", "digest": {"sha256": sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"plugin": name, "version": version, "expires": utc_text(expires),
                      "evidence": dict(evidence)},
    }  # fmt: skip


def envelope(body: bytes, keyid: str, signature: bytes) -> bytes:
    return json.dumps({
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode("ascii"),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }, indent=1).encode()  # fmt: skip


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope, decoded but not yet trusted."""

    body: bytes
    statement: dict[str, Any]
    signatures: tuple[bytes, ...]

    @property
    def plugin(self) -> str | None:
        pred = self.statement.get("predicate")
        name = pred.get("plugin") if isinstance(pred, dict) else None
        return name if isinstance(name, str) else None

    def digests(self) -> set[str]:
        subjects = self.statement.get("subject")
        out: set[str] = set()
        for s in subjects if isinstance(subjects, list) else []:
            digest = s.get("digest") if isinstance(s, dict) else None
            if isinstance(digest, dict) and isinstance(digest.get("sha256"), str):
                out.add(digest["sha256"].lower())
        return out

    def expires(self) -> float | None:
        pred = self.statement.get("predicate")
        raw = pred.get("expires") if isinstance(pred, dict) else None
        try:
            return dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


def open_envelope(raw: bytes) -> Opened:
    """Decode a DSSE envelope holding an in-toto Statement v1 of our predicate type."""
    try:
        env = json.loads(raw)
        kind = env.get("payloadType")
        body = base64.b64decode(env["payload"], validate=True)
        sigs = tuple(base64.b64decode(s["sig"], validate=True) for s in env["signatures"])
        st = json.loads(body)
        types = (kind, st.get("_type"), st.get("predicateType"))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise StagingError(f"attestation: {exc}", StagingReason.MALFORMED) from None
    if types != (PAYLOAD_TYPE, STATEMENT_TYPE, PREDICATE_TYPE):
        raise StagingError(
            "attestation: not a DSSE envelope of an in-toto Statement v1 of the "
            "staging-evidence predicate", StagingReason.MALFORMED,
        )  # fmt: skip
    return Opened(body, st, sigs)


def _signers(opened: Opened, trust: TrustPolicy) -> list[TrustedKey]:
    message = pae(PAYLOAD_TYPE, opened.body)
    return [
        k for k in trust.keys
        if any(trust.ed25519.verify(k.public_key, message, s) for s in opened.signatures)
    ]  # fmt: skip


def check_attestations(
    raws: Iterable[bytes],
    name: str,
    sha256: str,
    trust: TrustPolicy,
    attesters: frozenset[str],
    now: float,
) -> Opened:
    """The valid attestation of (``name``, ``sha256``) among ``raws``; otherwise raises
    :class:`StagingError` with the reason of the most telling one (unattested when none
    names the plugin, mismatch when they attest other bytes)."""
    best: StagingError | None = None
    rank = list(StagingReason)
    for raw in raws:
        try:
            opened = open_envelope(raw)
        except StagingError:
            continue  # someone else's file, or garbage: it attests nothing
        if opened.plugin != name:
            continue
        error = _judge(opened, sha256, trust, attesters, now)
        if error is None:
            return opened
        if best is None or rank.index(error.why) < rank.index(best.why):
            best = error
    if best is not None:
        raise best
    raise StagingError(
        f"{name}: no staging attestation (production requires one: `forgeonectl promote`)",
        StagingReason.UNATTESTED,
    )


def _judge(
    opened: Opened, sha256: str, trust: TrustPolicy, attesters: frozenset[str], now: float
) -> StagingError | None:
    name = opened.plugin
    signers = _signers(opened, trust)
    if not signers:
        return StagingError(
            f"{name}: staging attestation signature does not verify with any trusted key "
            "(forged or altered)", StagingReason.FORGED,
        )  # fmt: skip
    if sha256 not in opened.digests():
        return StagingError(
            f"{name}: staging attestation is for other bytes (sha256 "
            f"{', '.join(sorted(opened.digests()))[:16]}…, not {sha256[:16]}…)",
            StagingReason.MISMATCH,
        )
    role = [k for k in signers if k.name in attesters]
    if not role:
        names = ", ".join(sorted(k.name for k in signers))
        return StagingError(
            f"{name}: staging attestation signed by {names}, not by a staging attester "
            f"({', '.join(sorted(attesters)) or 'none configured'})", StagingReason.WRONG_ROLE,
        )  # fmt: skip
    expires = opened.expires()
    if expires is None or now > expires or all(k.expired(now) for k in role):
        return StagingError(f"{name}: staging attestation expired", StagingReason.EXPIRED)
    return None
