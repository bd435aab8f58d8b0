"""The retention base: where verification starts once old audit files were archived or removed.

With ``[audit] retain_files`` set, the daemon archives (or removes) the oldest log files. Before
it does, it writes ``base.json`` beside the log: the seq and hash of the last entry those files
held, every checkpoint-key handover from the first key on (so a verifier holding only the
first, pinned key can follow them even though the entries that carried them are gone), the
files taken away, and a signature by the key in force now over (seq, hash). Verification then
starts after that entry instead of at seq 1 (:func:`start_of`). Files deleted *without* the
policy leave no base that covers them: that is still a gap (``audit.gap``, kind ``missing``).
Pure: signature checking is injected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from forgeoned.core.audit_chain import SignatureCheck, canonical, unhex
from forgeoned.core.audit_walk import Start, handover_message

_BASE_DOMAIN: Final = b"forgeoned audit base v1\n"


def base_message(seq: int, digest: str, key: str) -> bytes:
    """What the base signs: the last entry taken away and the key the signer holds."""
    return _BASE_DOMAIN + f"{seq}\n{digest}\n{key}\n".encode()


@dataclass(frozen=True, slots=True)
class Handover:
    """One ``audit.key_rotated`` entry, kept so that it outlives the file it was in."""

    seq: int
    prev_hash: str
    old_key: str
    new_key: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "prev_hash": self.prev_hash, "old_key": self.old_key,
                "new_key": self.new_key, "signature": self.signature}  # fmt: skip

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Handover:
        return cls(int(raw["seq"]), str(raw["prev_hash"]), str(raw["old_key"]),
                   str(raw["new_key"]), str(raw["signature"]))  # fmt: skip

    @classmethod
    def of_entry(cls, entry: Mapping[str, Any]) -> Handover | None:
        details = entry.get("details")
        if not isinstance(details, Mapping):
            return None
        try:
            return cls(int(entry["seq"]), str(entry["prev_hash"]), str(details["old_key"]),
                       str(details["new_key"]), str(details["signature"]))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Base:
    """``base.json``: entries 1..``seq`` are gone by policy; ``hash`` is entry ``seq``'s."""

    seq: int
    hash: str
    key: str  # the key that signed this base (in force when the files were taken away)
    signature: str
    handovers: tuple[Handover, ...] = ()
    files: tuple[str, ...] = ()  # taken away by this and earlier bases
    archived_to: str = ""  # where they went ("" when removed)

    def to_json(self) -> bytes:
        return canonical(
            {"seq": self.seq, "hash": self.hash, "key": self.key, "signature": self.signature,
             "handovers": [h.to_dict() for h in self.handovers], "files": list(self.files),
             "archived_to": self.archived_to}
        )  # fmt: skip

    @classmethod
    def from_json(cls, data: bytes) -> Base:
        """ValueError when ``data`` is not a base record."""
        try:
            raw = json.loads(data)
            return cls(int(raw["seq"]), str(raw["hash"]), str(raw["key"]), str(raw["signature"]),
                       tuple(Handover.from_dict(h) for h in raw.get("handovers", [])),
                       tuple(str(f) for f in raw.get("files", [])),
                       str(raw.get("archived_to", "")))  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"base.json is unreadable: {exc}") from exc


def keys_through(
    trusted_key: str, handovers: Sequence[Handover], check: SignatureCheck
) -> list[tuple[int, str]]:
    """``(from_seq, key)`` for the trusted key and each handover after it, each handover
    checked against the key before it; ValueError naming the first that is not."""
    out = [(0, trusted_key)]
    for h in sorted(handovers, key=lambda h: h.seq):
        key = out[-1][1]
        if h.old_key != key or not check(
            handover_message(h.seq, h.prev_hash, h.new_key), unhex(h.signature), key
        ):
            raise ValueError(f"the key handover at entry {h.seq} is not signed by the key before")
        out.append((h.seq, h.new_key))
    return out


def start_of(base: Base, trusted_key: str, check: SignatureCheck) -> Start:
    """Where verification starts given ``base``; ValueError if the base is not genuine."""
    keys = keys_through(trusted_key, base.handovers, check)
    if base.key not in {k for _, k in keys}:
        raise ValueError("base.json is signed by a key the trusted key never handed over to")
    if not check(base_message(base.seq, base.hash, base.key), unhex(base.signature), base.key):
        raise ValueError("base.json has an invalid signature")
    key_at_base = [k for seq, k in keys if seq <= base.seq][-1]
    return Start(seq=base.seq, prev=base.hash, key=key_at_base, base_seq=base.seq)
