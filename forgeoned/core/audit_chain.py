"""The audit hash chain: canonical encoding, entry hashes, checkpoints and verification.

Every stored entry carries ``prev_hash`` (the ``hash`` of the entry before it, or
:data:`GENESIS_HASH` for seq 1) and ``hash`` = SHA-256 over the canonical JSON of the entry
without its ``hash`` field. Editing, deleting, reordering or truncating an entry therefore
breaks the chain at that entry. Rewriting the *whole* chain consistently is caught by the
checkpoints: ``audit.checkpoint`` entries (and a separate signed head record) that carry an
Ed25519 signature, by the daemon's own key, over ``(seq, hash)`` of the entry they cover.
Without the key nobody can produce a rewritten chain whose checkpoints still verify.

Verification (from seq 1, a retention base or the last verified checkpoint, following key
handovers) is :mod:`forgeoned.core.audit_walk`. This module is pure: signature checking is
injected as a :data:`SignatureCheck`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

GENESIS_HASH: Final = "0" * 64
CHECKPOINT_EVENT: Final = "audit.checkpoint"
GAP_EVENT: Final = "audit.gap"  # the log itself recording a period it could not write
_CHECKPOINT_DOMAIN: Final = b"forgeoned audit checkpoint v1\n"

# (message, signature, public key hex) -> valid?
SignatureCheck = Callable[[bytes, bytes, str], bool]

# Built once: json.dumps with non-default options builds a new encoder on every call, a
# measurable share of the per-entry cost of the audit log. Encoding holds no state, so
# one instance serves every thread.
_CANONICAL: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The one byte encoding that is hashed and stored: sorted keys, no spaces, UTF-8."""
    return _CANONICAL.encode(entry).encode()


def plain(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as plain JSON values (paths, enums… become strings); ValueError if not JSON."""
    out: dict[str, Any] = json.loads(json.dumps(fields, default=str, allow_nan=False))
    return out


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical encoding of ``entry`` without its ``hash`` field."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def rfc3339(epoch: float) -> str:
    """``2026-01-02T03:04:05.123456Z`` (UTC, microseconds, rounded half-even like datetime).

    Every audit entry gets one, so the date part is formatted once per second and reused.
    """
    fraction, whole = math.modf(epoch)
    second, micros = int(whole), round(fraction * 1_000_000)
    if micros < 0:
        second, micros = second - 1, micros + 1_000_000
    elif micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_second_text(second)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp; raises ValueError when it is not one."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment.timestamp()


def seal(fields: Mapping[str, Any], seq: int, ts: str, prev_hash: str) -> dict[str, Any]:
    """The stored entry for ``fields`` at position ``seq``, with its chain fields."""
    entry: dict[str, Any] = dict(fields)
    entry["seq"] = seq
    entry["ts"] = ts
    entry["prev_hash"] = prev_hash
    entry["hash"] = entry_hash(entry)
    return entry


def seal_line(
    fields: Mapping[str, Any], seq: int, ts: str, prev_hash: str
) -> tuple[dict[str, Any], bytes]:
    """Like :func:`seal`, plus the line to store, with one JSON encoding instead of two.

    The line is the canonical body with ``hash`` appended last (lines need not be canonical:
    verification re-encodes each entry without its hash). TypeError for non-JSON values.
    """
    body: dict[str, Any] = dict(fields)
    body["seq"] = seq
    body["ts"] = ts
    body["prev_hash"] = prev_hash
    encoded = canonical(body)
    digest = hashlib.sha256(encoded).hexdigest()
    body["hash"] = digest
    return body, encoded[:-1] + b',"hash":"' + digest.encode() + b'"}\n'


def checkpoint_message(seq: int, digest: str) -> bytes:
    """What a checkpoint signs: the position and hash of the entry it vouches for."""
    return _CHECKPOINT_DOMAIN + f"{seq}\n{digest}\n".encode()


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A signed statement "the chain had entry ``seq`` with hash ``hash``" (kept beside the log)."""

    seq: int
    hash: str
    key: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedHead:
        return cls(
            seq=int(data["seq"]),
            hash=str(data["hash"]),
            key=str(data["key"]),
            signature=str(data["signature"]),
        )


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a chain verification; ``first_bad_seq``/``why`` say where it broke.

    ``gaps`` are the seqs of ``audit.gap`` entries: an intact chain that records periods in
    which records were refused or lost (its details say what)."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    why: str = ""
    checkpoints_checked: int = 0
    head_seq: int = 0
    gaps: tuple[int, ...] = ()
    base_seq: int = 0  # entries 1..base_seq were archived or removed by the retention policy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Line:
    """One raw line of the log and where it came from (for error messages)."""

    source: str
    number: int
    data: bytes
    offset: int = 0  # of the line's first byte in its file


def parse_line(
    line: Line, expected: int, broken: Callable[[int, str], Exception]
) -> dict[str, Any]:
    """The entry on ``line``; raises ``broken(expected, why)`` if it is not a complete one."""
    if not line.data.endswith(b"\n"):
        raise broken(expected, f"entry {expected} is truncated (torn write at {_at(line)})")
    try:
        entry = json.loads(line.data)
    except ValueError:
        raise broken(expected, f"entry {expected} is not valid JSON (at {_at(line)})") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
        raise broken(expected, f"entry {expected} has no integer seq (at {_at(line)})")
    return entry


def unhex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _at(line: Line) -> str:
    return f"{line.source}:{line.number}"
