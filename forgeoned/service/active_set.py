"""The durable active set: which version of each plugin runs, with a copy of its bytes.

A swap's COMMIT writes the new version's bytes under ``STATE_DIR/artifacts/<sha256>.wasm``
(first, atomically) and then the state file (active record + rollback floor, one atomic
replace). A restart therefore finds the exact bytes of every active version even if plugins.d
changed meanwhile, which is what lets it bring back "exactly the old or exactly the new".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

from forgeoned.core.desired import Candidate
from forgeoned.core.ports import KeptCopies, StateRecord
from forgeoned.core.rollback import next_floor
from forgeoned.core.state import (
    ActiveRecord,
    DaemonState,
    DowngradeOverride,
    Floor,
    QuarantineCause,
    Refusal,
)
from forgeoned.core.swap_ports import Version

log = logging.getLogger("forgeoned")
WRITE_THREADS = 4  # file creation is mostly waiting on the filesystem: overlap it


class ActiveSet:
    """Implements :class:`forgeoned.core.swap_ports.Committer` over the state store (the
    records) and the kept copies (the bytes)."""

    def __init__(self, store: StateRecord, kept: KeptCopies) -> None:
        self.store = store
        self.kept = kept
        self._pending: DaemonState | None = None  # inside batch(): not yet on disk
        self._owned = False  # inside batch(): _pending's maps are copies the batch may change
        self._unsynced = False
        self._garbage: list[str] = []  # kept copies to delete once the batch is durable
        self._writes: dict[str, Future[None]] = {}  # inside batch(): kept copies being written
        self._pool: ThreadPoolExecutor | None = None

    @property
    def current(self) -> DaemonState:
        """The state as commits left it (pending ones included, inside :meth:`batch`)."""
        return self._pending if self._pending is not None else self.store.state

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the commits of a daemon start into one durable write.

        Nothing is served before READY=1, so a crash inside the batch only means the next
        start does the same work again from the previous state: still exactly old or new.
        """
        self._pending, self._unsynced, self._owned = self.store.state, False, False
        self._garbage = []
        pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="forgeoned-keep")
        self._pool = pool
        try:
            yield
        finally:
            self._pool = None
            pool.shutdown(wait=True)
            pending, self._pending = self._unkept(self._pending or self.store.state), None
            self._owned = False
            if self._unsynced:
                self.kept.sync()  # the kept artifacts first, then the state that refers to them
            if pending != self.store.state:
                self.store.commit(pending)
            garbage, self._garbage = self._garbage, []
            for sha in garbage:  # only now is no durable record referring to them
                self._collect(sha, self.store.state.active)

    def _write(self, name: str, data: bytes) -> None:
        if self._pending is None or self._pool is None:
            self.kept.write(name, data)
            return
        self._writes[name] = self._pool.submit(self.kept.write, name, data, durable=False)
        self._unsynced = True

    def _unkept(self, pending: DaemonState) -> DaemonState:
        """Once the batch's writes are done: records whose kept copy failed to be written
        (e.g. a full disk) go back to what the store has, so that no durable record ever
        refers to a missing copy; those plugins run now and are started anew next time."""
        failed: set[str] = set()
        for name, done in self._writes.items():
            if (exc := done.exception()) is not None:
                log.error("%s; not recorded as active", exc)
                failed.add(name.split(".", 1)[0])
        self._writes = {}
        if not failed:
            return pending
        old = self.store.state
        active, floors = dict(pending.active), dict(pending.floors)
        for name in [n for n, rec in pending.active.items() if rec.sha256 in failed]:
            active.pop(name)
            floors.pop(name, None)
            if name in old.active:
                active[name] = old.active[name]
            if name in old.floors:
                floors[name] = old.floors[name]
        return replace(pending, active=active, floors=floors)

    def _keep(self, sha256: str, data: bytes, detached: bytes | None) -> None:
        name = f"{sha256}.wasm"
        if name not in self._writes and not self.kept.exists(name):
            self._write(name, data)
        if detached is not None:
            self._write(f"{sha256}.wasm.sig", detached)

    def _save(self, new: DaemonState) -> None:
        if self._pending is not None:
            self._pending = new
        else:
            self.store.commit(new)

    def commit(self, name: str, version: Version | None) -> None:
        st = self.current
        previous = st.active.get(name)
        record, same = None, False
        if version is not None:
            kept = version.kept
            record = kept.record
            self._keep(record.sha256, kept.module, kept.detached)
            same = previous is not None and previous.sha256 == record.sha256
            if same and name not in st.quarantined and name not in st.overrides:
                return  # a restart of what is already recorded: nothing to write (nor copy)
        if self._pending is not None:
            # Inside the start's batch: change the batch's own copies of the maps in place
            # (a copy of three 1,000-entry maps per commit made 1,000 new installs quadratic).
            st = self._owned_pending()
            active, floors, overrides, causes = st.active, st.floors, st.overrides, st.causes
        else:
            active, floors = dict(st.active), dict(st.floors)
            overrides, causes = dict(st.overrides), dict(st.causes)
        if record is None:
            active.pop(name, None)
        else:
            active[name] = previous if same and previous is not None else record
            floors[name] = next_floor(floors.get(name), Floor(record.version, record.sha256))
            if name in overrides and overrides[name].version == record.version:
                del overrides[name]  # an override is good for one activation
        causes.pop(name, None)
        if self._pending is None:
            self.store.commit(
                replace(
                    st,
                    active=active,
                    floors=floors,
                    overrides=overrides,
                    quarantined=st.quarantined - {name},
                    causes=causes,
                )
            )
        elif name in st.quarantined:
            self._pending = replace(st, quarantined=st.quarantined - {name})
        if previous is not None and self._pending is not None:
            self._garbage.append(previous.sha256)
        elif previous is not None:
            self._collect(previous.sha256, active)

    def _owned_pending(self) -> DaemonState:
        """The batch's pending state, with maps of its own (copied once per batch): what the
        store holds is never changed in place."""
        pending = self._pending
        assert pending is not None
        if not self._owned:
            pending = self._pending = replace(
                pending,
                active=dict(pending.active),
                floors=dict(pending.floors),
                overrides=dict(pending.overrides),
                causes=dict(pending.causes),
                refused=dict(pending.refused),
            )
            self._owned = True
        return pending

    def active_sha256(self, name: str) -> str | None:
        record = self.current.active.get(name)
        return record.sha256 if record is not None else None

    def set_quarantined(
        self, name: str, quarantined: bool, cause: QuarantineCause | None = None
    ) -> None:
        st = self.current
        q = (st.quarantined | {name}) if quarantined else (st.quarantined - {name})
        causes = {k: v for k, v in st.causes.items() if k != name}
        if quarantined and cause is not None:
            causes[name] = cause
        self._save(replace(st, quarantined=q, causes=causes))

    def set_refused(self, name: str, refused: tuple[Refusal, ...]) -> None:
        """Record the refused candidates of ``name`` (oldest first; empty: none)."""
        st = self.current
        others = {k: v for k, v in st.refused.items() if k != name}
        self._save(replace(st, refused={**others, name: refused} if refused else others))

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        """Record an admin's permission to activate ``version`` of ``name`` once."""
        st = self.current
        override = DowngradeOverride(version=version, actor=actor)
        self._save(replace(st, overrides={**st.overrides, name: override}))

    def persisted(self) -> list[Candidate]:
        """The active set to start before READY=1 (candidates served from the kept copies)."""
        return [
            Candidate(name, rec.version, rec.sha256, f"@state/{rec.sha256}.wasm")
            for name, rec in sorted(self.current.active.items())
        ]

    def blob(self, sha256: str) -> tuple[bytes, bytes | None] | None:
        for suffix in (".wasm", ".wasm.sig"):
            if (writing := self._writes.get(sha256 + suffix)) is not None:
                writing.exception()  # wait for a kept copy still being written (batch)
        data = self.kept.read(f"{sha256}.wasm")
        if data is None:
            return None
        return data, self.kept.read(f"{sha256}.wasm.sig")

    def _collect(self, sha256: str, active: dict[str, ActiveRecord]) -> None:
        """Delete the kept copy of a version no active record refers to any more."""
        if any(rec.sha256 == sha256 for rec in active.values()):
            return
        for suffix in (".wasm", ".wasm.sig"):
            self.kept.delete(f"{sha256}{suffix}")
