"""The daemon start's batching: audit events held then written together (each plugin's in
order), and kept artifact copies written in parallel with a failed one never recorded."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from daemon_fakes import FakeVersion

from forgeoned.adapters.files.kept import KeptCopiesDir
from forgeoned.adapters.files.state_store import StateStore
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.errors import AuditError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.audit_batch import AuditBatch


class Sink:
    def __init__(self, fail_for: str | None = None) -> None:
        self.events: list[AuditEvent] = []
        self.fail_for = fail_for
        self.lock = threading.Lock()
        self.go = threading.Event()
        self.go.set()

    def record(self, event: AuditEvent) -> None:
        assert self.go.wait(30)
        if event.plugin == self.fail_for:
            raise AuditError("cannot write the audit log: No space left on device")
        with self.lock:
            self.events.append(event)


def ev(plugin: str, name: EventName = EventName.PLUGIN_INSTALLED) -> AuditEvent:
    return AuditEvent(name, plugin=plugin, version="1.0.0")


def test_events_are_written_in_the_background_and_all_durable_on_leaving() -> None:
    sink = Sink()
    sink.go.clear()  # every write blocks, as a slow sync would
    batch = AuditBatch(sink, writers=4)
    with batch.hold():
        for i in range(50):
            batch.record(ev(f"p{i}", EventName.PLUGIN_UNSIGNED_LOADED))
            batch.record(ev(f"p{i}"))  # neither call waits for the write
        assert sink.events == []
        sink.go.set()
    assert len(sink.events) == 100  # hold() returned only once all were recorded
    for i in range(50):
        mine = [e.event for e in sink.events if e.plugin == f"p{i}"]
        assert mine == [EventName.PLUGIN_UNSIGNED_LOADED, EventName.PLUGIN_INSTALLED]
    batch.record(ev("late"))  # outside hold(): straight through
    assert sink.events[-1].plugin == "late"


def test_a_failing_write_is_logged_and_the_others_still_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink(fail_for="bad")
    batch = AuditBatch(sink, writers=2)
    with batch.hold():
        for event in (ev("a"), ev("bad"), ev("bad"), ev("b")):
            batch.record(event)
    assert batch.failed == 2
    assert sorted(str(e.plugin) for e in sink.events) == ["a", "b"]
    assert "cannot record plugin.installed of bad: cannot write" in caplog.text


def loaded(name: str, version: str, data: bytes) -> FakeVersion:
    sha = hashlib.sha256(data).hexdigest()
    return FakeVersion(version, sha, module=data, source=f"{name}.wasm")


def test_batch_writes_kept_copies_and_a_failed_one_is_not_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    active = ActiveSet(StateStore(tmp_path), KeptCopiesDir(tmp_path / "artifacts"))
    good = [loaded(f"p{i}", "1.0.0", f"module {i}".encode()) for i in range(20)]
    bad = loaded("bad", "1.0.0", b"bad module")
    (tmp_path / "artifacts" / f".{bad.sha256}.wasm.tmp").mkdir()  # its write will fail
    with active.batch():
        for v in [*good, bad]:
            active.commit(v.source.removesuffix(".wasm"), v)
    state = active.store.state
    assert sorted(state.active) == sorted(f"p{i}" for i in range(20))
    assert "bad" not in state.floors
    for v in good:
        assert active.blob(v.sha256) == (v.module, None)
    assert not (tmp_path / "artifacts" / f"{bad.sha256}.wasm").exists()
    assert StateStore(tmp_path).state == state  # what is on disk, not just in memory
    assert "not recorded as active" in caplog.text


def test_batched_commits_leave_the_stored_state_alone_and_end_as_unbatched_ones(
    tmp_path: Path,
) -> None:
    """Inside a batch the commits change the batch's own maps; the state the store holds
    (which readers may have) is never changed in place, and the result is the same as the
    same commits made one by one outside a batch."""
    versions = {f"p{i}": loaded(f"p{i}", "1.0.0", f"module {i}".encode()) for i in range(6)}
    newer = loaded("p1", "1.1.0", b"module 1, newer")

    def run(active: ActiveSet) -> None:
        for name, v in versions.items():
            active.commit(name, v)
        active.set_quarantined("p2", True)
        active.commit("p1", newer)
        active.commit("p2", versions["p2"])  # a quarantined plugin activated again
        active.commit("p3", None)  # withdrawn

    plain = ActiveSet(StateStore(tmp_path / "plain"), KeptCopiesDir(tmp_path / "plain/a"))
    run(plain)
    batched = ActiveSet(StateStore(tmp_path / "batch"), KeptCopiesDir(tmp_path / "batch/a"))
    batched.commit("p0", versions["p0"])
    before = batched.store.state
    maps = (dict(before.active), dict(before.floors), dict(before.causes))
    with batched.batch():
        run(batched)
        assert batched.store.state is before
        assert (before.active, before.floors, before.causes) == maps
        assert batched.current.active["p1"].version == "1.1.0"
    assert batched.store.state == plain.store.state
    assert "p3" not in batched.store.state.active
    assert "p2" not in batched.store.state.quarantined
    assert StateStore(tmp_path / "batch").state == plain.store.state
