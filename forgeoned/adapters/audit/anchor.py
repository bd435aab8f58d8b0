"""Keeps the audit log's anchor in the state file and holds the log against it.

See :mod:`forgeoned.core.audit_anchor` for what the anchor is and what a gap is. This keeper
moves the anchor with every signed checkpoint (``AuditLog.on_checkpoint``), compares at start
(:meth:`AnchorKeeper.start`) and at every verification (``AuditLog.anchor_check``), and on a
finding writes one ``audit.gap`` entry (critical, so also a critical journal entry) and keeps
every verdict failed — so ``forgeone_audit_chain_ok`` is 0, the alert fires and
``forgeonectl audit verify`` exits 9 naming what is missing — until an admin accepts the gap
(:meth:`AnchorKeeper.accept`), which anchors the log where it is now. The anchor does not move
while a gap is open.

Locks: :meth:`advance` runs inside the audit log's lock (from its checkpoint), so it takes no
lock of this keeper; it changes the anchor only through the store's atomic
``update_anchor``. The other methods, which may write to the log, serialise on the keeper's.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from forgeoned.adapters.audit.files import entry_at, first_seq, last_seq, log_files, read_base
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.retention import read_handovers
from forgeoned.core.audit_anchor import Anchor, Found, Gap, GapKind, compare
from forgeoned.core.audit_chain import SignedHead, VerifyResult
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.state import DaemonState
from forgeoned.errors import ConflictError

log = logging.getLogger("forgeoned.audit")


class AnchorStore(Protocol):
    """Where the anchor is kept (:class:`~forgeoned.adapters.files.state_store.StateStore`)."""

    @property
    def state(self) -> DaemonState: ...

    def update_anchor(self, change: Callable[[Anchor | None], Anchor | None]) -> Anchor | None: ...


class EntryRecorder(Protocol):
    def record_entry(self, event: AuditEvent) -> dict[str, Any]: ...


class Gate(Protocol):
    """Runs an action whose first audit record is its precondition (the trail's outage)."""

    def guard(self, action: Callable[[], None], what: str) -> None: ...


class AnchorKeeper:
    def __init__(
        self,
        store: AnchorStore,
        audit_log: AuditLog,
        trail: EntryRecorder,
        gate: Gate | None = None,
    ) -> None:
        self._store = store
        self._log = audit_log
        self._trail = trail
        self._gate = gate
        self._lock = threading.Lock()

    @property
    def anchor(self) -> Anchor | None:
        return self._store.state.audit_anchor

    def start(self) -> None:
        """Compare the log just opened with the anchor; then follow its checkpoints."""
        with self._lock:
            anchor = self.anchor
            if anchor is not None and anchor.gap is None:
                gap = compare(anchor, self._found(anchor, at_start=True))
                if gap is not None:
                    self._open(anchor, gap)
            elif anchor is not None and anchor.gap is not None and not anchor.gap.seq:
                self._open(anchor, anchor.gap)  # found, but its entry was never written
            self._log.on_checkpoint = self.advance
            self._log.anchor_check = self.check
            self._log.on_files_lost = self.files_lost
            if self._log.last_head is not None:
                self.advance(self._log.last_head)  # first start: the anchor begins here

    def advance(self, head: SignedHead) -> None:
        """A new signed checkpoint: the anchor moves there (not while a gap is open)."""
        moved = Anchor(head.seq, head.hash, head.key)
        self._store.update_anchor(lambda a: a if a is not None and a.gap is not None else moved)

    def files_lost(self) -> None:
        """The log's files were deleted while it wrote to them and it starts a new chain: the
        anchor is frozen with the gap now (inside the log's lock: no entry yet, the next
        check writes it) so that the new chain's first checkpoint does not move it."""

        def freeze(anchor: Anchor | None) -> Anchor | None:
            if anchor is None or anchor.gap is not None:
                return anchor
            message = (
                "the audit log files were deleted while the daemon wrote to them and it went "
                f"on with a new chain; the log was anchored at entry {anchor.seq} (hash "
                f"{anchor.hash[:16]}…): entries 1..{anchor.seq} (at least) are missing"
            )
            return dataclasses.replace(anchor, gap=Gap(GapKind.MISSING, message))

        self._store.update_anchor(freeze)
        log.critical("AUDIT GAP (missing): the audit log files were deleted under the daemon")

    def check(self, result: VerifyResult) -> VerifyResult:
        """``result`` of a chain verification, failed if the log does not reach its anchor."""
        with self._lock:
            anchor = self.anchor
            if anchor is None:
                return result
            if anchor.gap is None:
                gap = compare(anchor, self._found(anchor, at_start=False))
                if gap is None:
                    return result
                anchor = self._open(anchor, gap)
            elif not anchor.gap.seq:
                anchor = self._open(anchor, anchor.gap)  # its entry is still to be written
        gap = anchor.gap
        assert gap is not None
        why = (
            f"audit.gap ({gap.kind.value}, entry {gap.seq}): {gap.message}; after looking into "
            "it, an admin accepts it with forgeonectl audit accept-gap"
        )
        if not result.ok:
            why = f"{result.why}; and {why}"
        first = result.first_bad_seq if result.first_bad_seq is not None else gap.seq
        return dataclasses.replace(result, ok=False, first_bad_seq=first, why=why)

    def accept(self, actor: str) -> dict[str, Any]:
        """An admin accepts the open gap: the log is anchored where it is now. Fails closed:
        ``control.requested`` is written first, and if it cannot be, nothing changes
        (AuditUnavailableError, 503 ``audit_unavailable``)."""
        out: list[dict[str, Any]] = []
        if self._gate is None:
            self._accept(actor, out)
        else:
            self._gate.guard(lambda: self._accept(actor, out), "accept the audit gap")
        return out[0]

    def _accept(self, actor: str, out: list[dict[str, Any]]) -> None:
        with self._lock:
            anchor = self.anchor
            if anchor is None or anchor.gap is None:
                raise ConflictError("there is no open audit gap to accept")
            gap = anchor.gap
            self._trail.record_entry(
                AuditEvent(EventName.CONTROL_REQUESTED, actor=actor, reason=gap.kind.value,
                           message=f"{actor} requested audit_accept_gap of entry {gap.seq}",
                           details={"action": "audit_accept_gap", "gap_seq": gap.seq})
            )  # fmt: skip
            self._store.update_anchor(lambda a: None)
            self._log.checkpoint()  # anchors there (advance) if anything came since the last
            if self._log.last_head is not None:
                self.advance(self._log.last_head)
            log.warning("audit: %s accepted the gap at entry %d (%s)", actor, gap.seq,
                        gap.kind.value)  # fmt: skip
            now = self.anchor
            out.append({"accepted": gap.to_dict(), "anchor": now.to_dict() if now else None})

    def _found(self, anchor: Anchor, *, at_start: bool) -> Found:
        directory = self._log.directory
        present = not self._log.started_empty if at_start else bool(log_files(directory))
        if at_start:  # just opened: held against the anchor only
            head, written = (last_seq(directory) if present else 0), 0
        else:
            head, written = self._log.ends()
        at = entry_at(directory, anchor.seq) if present else None
        try:
            base = read_base(directory)
        except ValueError:
            base = None  # verification reports an unreadable base
        return Found(
            files=present,
            head_seq=head,
            hash_at_anchor=str(at["hash"]) if at is not None else None,
            key=self._log.public_key,
            first_seq=first_seq(directory) if present else 1,
            base_seq=base.seq if base is not None else 0,
            handed_over_from=frozenset(h.old_key for h in read_handovers(directory)),
            written_seq=written,
        )

    def _open(self, anchor: Anchor, gap: Gap) -> Anchor:
        """Freeze the anchor with ``gap``, write the audit.gap entry, remember its seq."""
        frozen = dataclasses.replace(anchor, gap=gap)
        self._store.update_anchor(lambda a: frozen)  # first: a checkpoint must not move it
        log.critical("AUDIT GAP (%s): %s", gap.kind.value, gap.message)
        plain = Anchor(anchor.seq, anchor.hash, anchor.key).to_dict()
        try:
            entry = self._trail.record_entry(
                AuditEvent(EventName.AUDIT_GAP, actor="forgeoned", reason=gap.kind.value,
                           message=gap.message, details={"kind": gap.kind.value, "anchor": plain})
            )  # fmt: skip
        except Exception:  # the failed verdict stands even if the entry cannot be written
            log.exception("audit: cannot record the audit.gap entry")
            return frozen
        recorded = dataclasses.replace(frozen, gap=dataclasses.replace(gap, seq=int(entry["seq"])))
        self._store.update_anchor(lambda a: recorded)
        return recorded
