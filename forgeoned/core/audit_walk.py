"""Walking the audit chain: verification from seq 1, from a retention base, or from the last
verified checkpoint, following checkpoint-key handovers.

:func:`walk_chain` checks lines in order and stops at the first problem. Where it starts is a
:class:`Start`: the genesis (the chain must then begin with a signed checkpoint), a retention
:class:`~forgeoned.core.audit_base.Base` (older files were archived or removed by policy; the
base, signed by the daemon's key, vouches for the hash of the last entry removed), or the
:class:`Resume` point of an earlier walk (the periodic check re-reads only what came since
the last checkpoint it verified).

A key handover (``audit.key_rotated``) names the old and the new checkpoint key and carries the
old key's signature over (its seq, its prev_hash, the new key): from it on, checkpoints must be
signed by the new key. So a verifier that trusts the first key (the one pinned at install)
follows every rotation, and a rotation nobody signed is a broken chain. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from forgeoned.core.audit_chain import (
    CHECKPOINT_EVENT,
    GAP_EVENT,
    GENESIS_HASH,
    Line,
    SignatureCheck,
    SignedHead,
    VerifyResult,
    checkpoint_message,
    entry_hash,
    parse_line,
    unhex,
)

HANDOVER_EVENT: Final = "audit.key_rotated"
_HANDOVER_DOMAIN: Final = b"forgeoned audit key handover v1\n"


def handover_message(seq: int, prev_hash: str, new_key: str) -> bytes:
    """What the old key signs to hand over: the handover entry's position and the new key."""
    return _HANDOVER_DOMAIN + f"{seq}\n{prev_hash}\n{new_key}\n".encode()


@dataclass(frozen=True, slots=True)
class Start:
    """Where a walk begins: after entry ``seq`` (whose hash is ``prev``), with ``key`` (None:
    the trusted key) in force; ``checkpoints`` and ``gaps`` counted before it."""

    seq: int = 0
    prev: str = GENESIS_HASH
    key: str | None = None
    checkpoints: int = 0
    gaps: tuple[int, ...] = ()
    base_seq: int = 0  # entries 1..base_seq were removed by the retention policy


@dataclass(frozen=True, slots=True)
class Resume:
    """The last checkpoint a walk verified: the line it is on (``source`` at byte ``offset``)
    and the :class:`Start` that begins a later walk at that line."""

    source: str
    offset: int
    start: Start


class _Broken(Exception):
    def __init__(self, seq: int, why: str) -> None:
        super().__init__(why)
        self.seq = seq
        self.why = why


def walk_chain(
    lines: Iterable[Line],
    check: SignatureCheck,
    trusted_key: str,
    head: SignedHead | None,
    start: Start | None = None,
) -> tuple[VerifyResult, Resume | None]:
    """Verify ``lines`` from ``start``; the verdict and the last verified checkpoint."""
    walk = _Walk(check, trusted_key, head, start or Start())
    try:
        walk.run(lines)
    except _Broken as broken:
        return walk.result(broken), walk.resume
    return walk.result(None), walk.resume


class _Walk:
    """One pass over the lines; raises :class:`_Broken` at the first problem."""

    def __init__(
        self, check: SignatureCheck, trusted_key: str, head: SignedHead | None, start: Start
    ) -> None:
        self.check = check
        self.key = start.key or trusted_key
        self.head = head
        self.start = start
        self.count = start.seq
        self.checkpoints = start.checkpoints
        self.gaps = list(start.gaps)
        self.resume: Resume | None = None

    def result(self, broken: _Broken | None) -> VerifyResult:
        gaps = tuple(self.gaps)
        base = self.start.base_seq
        if broken is not None:
            return VerifyResult(False, self.count, broken.seq, broken.why, self.checkpoints,
                                self.count, gaps, base)  # fmt: skip
        return VerifyResult(True, self.count, None, "", self.checkpoints, self.count, gaps, base)

    def run(self, lines: Iterable[Line]) -> None:
        head = self.head
        if head is not None and head.seq <= self.start.seq:
            head = None  # older than the retention base, which is signed itself
        prev = self.start.prev
        head_key: str | None = None
        for line in lines:
            expected = self.count + 1
            entry = parse_line(line, expected, _Broken)
            seq = entry["seq"]
            if seq <= self.start.seq and self.count == self.start.seq:
                continue  # before the start (a file the retention policy has not removed yet)
            if seq != expected:
                what = "missing or out of order" if seq > expected else "out of order"
                raise _Broken(expected, f"entry {expected} {what} (found seq {seq} at {_at(line)})")
            if entry.get("prev_hash") != prev:
                raise _Broken(seq, f"prev_hash does not match entry {seq - 1} (at {_at(line)})")
            if entry.get("hash") != entry_hash(entry):
                raise _Broken(seq, f"content does not match its hash (edited, at {_at(line)})")
            event = entry.get("event")
            if seq == 1 and event != CHECKPOINT_EVENT:
                raise _Broken(1, "the chain does not start with a signed checkpoint")
            if event == CHECKPOINT_EVENT:
                before = Start(seq - 1, prev, self.key, self.checkpoints, tuple(self.gaps),
                               self.start.base_seq)  # fmt: skip
                self._checkpoint(entry, prev)
                self.checkpoints += 1
                self.resume = Resume(line.source, line.offset, before)
            elif event == GAP_EVENT:
                self.gaps.append(seq)
            elif event == HANDOVER_EVENT:
                self._handover(entry, prev)
            if head is not None and seq == head.seq:
                if entry["hash"] != head.hash:
                    raise _Broken(seq, "entry differs from the signed head record (rewritten)")
                head_key = self.key
            prev = entry["hash"]
            self.count += 1
        if head is None:
            return
        if head_key is None:
            first = self.count + 1
            raise _Broken(first, f"entries {first}..{head.seq} are missing (truncated)")
        if not self.check(checkpoint_message(head.seq, head.hash), unhex(head.signature), head_key):
            raise _Broken(head.seq, "the signed head record has an invalid signature")

    def _checkpoint(self, entry: Mapping[str, Any], prev: str) -> None:
        seq = int(entry["seq"])
        details = entry.get("details")
        if not isinstance(details, dict):
            raise _Broken(seq, "checkpoint without details")
        if details.get("covers_seq") != seq - 1 or details.get("covers_hash") != prev:
            raise _Broken(seq, "checkpoint does not cover the entry before it")
        if details.get("key") != self.key:
            raise _Broken(seq, "checkpoint signed by a key that is not the daemon's audit key")
        signature = unhex(str(details.get("signature", "")))
        if not self.check(checkpoint_message(seq - 1, prev), signature, self.key):
            raise _Broken(seq, "checkpoint signature is invalid (chain rewritten or key replaced)")

    def _handover(self, entry: Mapping[str, Any], prev: str) -> None:
        seq = int(entry["seq"])
        details = entry.get("details")
        if not isinstance(details, dict):
            raise _Broken(seq, "key handover without details")
        new_key = str(details.get("new_key", ""))
        if details.get("old_key") != self.key:
            raise _Broken(seq, "key handover from a key that is not the one in force")
        message = handover_message(seq, prev, new_key)
        if not new_key or not self.check(message, unhex(str(details.get("signature"))), self.key):
            raise _Broken(seq, "key handover not signed by the key in force")
        self.key = new_key


def resumed(resume: Resume, *, base_seq: int) -> Start:
    """The :class:`Start` of ``resume``, with the retention base in force now."""
    return replace(resume.start, base_seq=base_seq)


def _at(line: Line) -> str:
    return f"{line.source}:{line.number}"


def verify_chain(
    lines: Iterable[Line],
    check: SignatureCheck,
    trusted_key: str,
    head: SignedHead | None,
    start: Start | None = None,
) -> VerifyResult:
    """:func:`walk_chain`'s verdict alone."""
    return walk_chain(lines, check, trusted_key, head, start)[0]
