"""The audit log's anchor: where the log had got to, kept outside the audit directory.

A hash chain shows an edited or removed entry *inside* the log, but not a log cut short at
its end, deleted, or started over: what is left still verifies. So the daemon keeps, in its
state file and updated with each signed checkpoint, the :class:`Anchor` (seq and hash of the
latest checkpoint, and the checkpoint key's public half); the checkpoint entries in the journal
carry the same. At start and at every check :func:`compare` holds the log against it:

- the checkpoint key is not the anchored one, nor one it handed over from (the directory
  was wiped, key included, or the log rebuilt under another key), or the entry at the
  anchor's seq has another hash: ``new_chain``;
- no log file left where the anchor says there was a log (the key is still there), or the
  log begins after entry 1 with no retention base (``base.json``) covering what is not there:
  ``missing``;
- the log ends before the anchor's seq, or (while the daemon runs) before the last entry it
  wrote itself, which may be after the latest checkpoint: ``truncated``.

A finding is an ``audit.gap`` entry (critical) and a failed verification until an admin
accepts it (``forgeonectl audit accept-gap``), which anchors the log where it is now. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class GapKind(enum.Enum):
    """What :func:`compare` found (the ``kind`` of the ``audit.gap`` entry)."""

    MISSING = "missing"
    NEW_CHAIN = "new_chain"
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class Gap:
    """A finding against the anchor, open until accepted (``seq``: its audit.gap entry)."""

    kind: GapKind
    message: str
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "seq": self.seq}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Gap:
        return cls(GapKind(raw["kind"]), str(raw["message"]), int(raw.get("seq", 0)))


@dataclass(frozen=True, slots=True)
class Anchor:
    """The latest signed checkpoint: ``seq``, ``hash`` and the checkpoint ``key`` (hex)."""

    seq: int
    hash: str
    key: str
    gap: Gap | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "hash": self.hash, "key": self.key}
        if self.gap is not None:
            out["gap"] = self.gap.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Anchor:
        gap = raw.get("gap")
        return cls(
            int(raw["seq"]),
            str(raw["hash"]),
            str(raw["key"]),
            Gap.from_dict(gap) if isinstance(gap, Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class Found:
    """The log as it is now: files present, the last seq on disk, the hash of the entry at
    the anchor's seq (None when there is none) and the key of the running log."""

    files: bool
    head_seq: int
    hash_at_anchor: str | None
    key: str
    first_seq: int = 1  # of the first entry on disk
    base_seq: int = 0  # entries 1..base_seq archived or removed by the retention policy
    handed_over_from: frozenset[str] = frozenset()  # keys that handed over (to ``key``)
    written_seq: int = 0  # the last entry the running log wrote (0: not known, as at start)


def compare(anchor: Anchor, found: Found) -> Gap | None:
    """What is missing compared with ``anchor`` (None: the log reaches it intact)."""
    where = f"anchored at entry {anchor.seq} (hash {anchor.hash[:16]}…, key {anchor.key[:16]}…)"
    if found.key != anchor.key and anchor.key not in found.handed_over_from:
        return Gap(
            GapKind.NEW_CHAIN,
            f"a new audit chain under another key ({found.key[:16]}…, {found.head_seq} "
            f"entries) where one was {where}: entries 1..{anchor.seq} are missing",
        )
    if not found.files:
        return Gap(GapKind.MISSING, f"the audit log files are gone; the log was {where}")
    if found.first_seq > found.base_seq + 1:
        return Gap(
            GapKind.MISSING,
            f"the audit log begins at entry {found.first_seq}: entries {found.base_seq + 1}.."
            f"{found.first_seq - 1} are missing (files deleted without the retention policy); "
            f"the log was {where}",
        )
    if found.head_seq < anchor.seq:
        return Gap(
            GapKind.TRUNCATED,
            f"the audit log ends at entry {found.head_seq} but was {where}: entries "
            f"{found.head_seq + 1}..{anchor.seq} (at least) are missing",
        )
    if found.hash_at_anchor != anchor.hash:
        return Gap(
            GapKind.NEW_CHAIN,
            f"entry {anchor.seq} is not the anchored one: the audit log was started over or "
            f"rewritten; it was {where}",
        )
    if found.head_seq < found.written_seq:
        return Gap(
            GapKind.TRUNCATED,
            f"the audit log ends at entry {found.head_seq} but the daemon has written up to "
            f"entry {found.written_seq}: entries {found.head_seq + 1}..{found.written_seq} are "
            "missing (cut away while it ran)",
        )
    return None
