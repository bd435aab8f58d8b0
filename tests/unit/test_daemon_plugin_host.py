"""Routing of one plugin: the gate, pause/resume holding calls, faults, tick skipping."""

from __future__ import annotations

import threading

import pytest
from daemon_fakes import FakeVersion

from forgeoned.core.lifecycle import State, Trigger
from forgeoned.core.state import ActiveRecord, KeptVersion
from forgeoned.core.stats import CALL_FUEL
from forgeoned.core.swap_ports import Instance, ShutdownFault, Version
from forgeoned.errors import (
    ApplicationError,
    IllegalTransition,
    PluginFault,
    PluginPausedError,
    PluginTrap,
    TrapKind,
    UnavailableError,
)
from forgeoned.service.plugin_host import PluginHost


def running_host(**kw: object) -> tuple[PluginHost, FakeVersion]:
    host = PluginHost("hello", **kw)  # type: ignore[arg-type]
    v = FakeVersion("1.0.0", "sha1")
    host.trigger(Trigger.START)
    host.install(v)
    host.trigger(Trigger.STARTED)
    return host, v


def test_stopped_plugin_refuses_calls_at_once() -> None:
    host = PluginHost("hello", hold_timeout_s=30)
    with pytest.raises(UnavailableError, match="is stopped"):
        host.call(b"x")


def test_a_call_to_a_paused_plugin_fails_at_once_unless_it_may_wait() -> None:
    host, v = running_host(hold_timeout_s=10)
    host.pause(drain_timeout=1)
    with pytest.raises(PluginPausedError, match="is paused"):
        host.call(b"now")
    assert host.state is State.PAUSED and v.paused == 1
    out: list[bytes] = []
    t = threading.Thread(target=lambda: out.append(host.call(b"held", wait_s=10)))
    t.start()
    assert host.wait_held(1, 5)  # held, not refused
    assert out == []
    host.resume()
    t.join(5)
    assert out == [b"1.0.0:held"] and v.resumed == 1


def test_a_refused_pause_leaves_it_running_and_a_refused_resume_leaves_it_paused() -> None:
    faults: list[PluginFault] = []
    host, v = running_host(on_fault=lambda h, ver, exc: faults.append(exc))
    v.lifecycle_errors["pause"] = ApplicationError("no", export="pause", status=7)
    with pytest.raises(ApplicationError):
        host.pause(drain_timeout=1)
    assert host.state is State.RUNNING and host.call(b"x") == b"1.0.0:x"
    host.pause(drain_timeout=1)
    v.lifecycle_errors["resume"] = ApplicationError("no", export="resume", status=5)
    with pytest.raises(ApplicationError):
        host.resume()
    assert host.view().state == "paused" and v.resumed == 0
    host.resume()
    assert host.view().state == "running" and v.resumed == 1
    assert faults == [] and host.last_error is None  # refusals are not faults


def test_a_trap_in_pause_is_a_fault() -> None:
    faults: list[PluginFault] = []
    host, v = running_host(on_fault=lambda h, ver, exc: faults.append(exc))
    v.lifecycle_errors["pause"] = PluginTrap("unreachable", TrapKind.UNREACHABLE, "pause")
    with pytest.raises(PluginTrap):
        host.pause(drain_timeout=1)
    assert host.state is State.FAILED and len(faults) == 1


def test_resume_of_a_running_plugin_is_an_illegal_transition() -> None:
    host, v = running_host()
    with pytest.raises(IllegalTransition):
        host.resume()
    assert v.resumed == 0 and host.state is State.RUNNING


def test_held_call_gives_up_after_its_wait() -> None:
    host, _ = running_host(hold_timeout_s=30)
    host.pause(drain_timeout=1)
    with pytest.raises(UnavailableError, match=r"stayed paused for 0\.05s"):
        host.call(b"x", wait_s=0.05)


def test_a_trap_fails_the_plugin_and_tells_the_supervisor() -> None:
    seen: list[tuple[str, PluginFault]] = []

    def on_fault(h: PluginHost, version: Version, exc: PluginFault) -> None:
        seen.append((version.version, exc))

    host, v = running_host(on_fault=on_fault)
    v.trap = True
    with pytest.raises(PluginTrap):
        host.call(b"boom")
    assert host.state is State.FAILED and host.last_error == "unreachable"
    assert [s[0] for s in seen] == ["1.0.0"]
    with pytest.raises(UnavailableError, match="is failed"):
        host.call(b"again")
    assert host.view().state == "failed"


def test_tick_is_skipped_unless_running() -> None:
    host, v = running_host()
    assert host.tick() is True and v.ticks == 1
    host.pause(drain_timeout=1)
    assert host.tick() is False and v.ticks == 1


def test_view_reports_the_current_version() -> None:
    host, _ = running_host()
    view = host.view()
    assert (view.name, view.version, view.sha256, view.state) == (
        "hello",
        "1.0.0",
        "sha1",
        "running",
    )
    assert view.instances == 1


# --- the call gate: one call per instance, the others served in arrival order ---------------


class Recorder:
    """A version with ``count`` instances that records the order calls ran in and how many
    ran at once; a call whose input is in ``hold`` waits for ``go`` first."""

    def __init__(self, version: str = "1.0.0", count: int = 1) -> None:
        self.version, self.sha256, self.signers = version, "sha", ()
        self.limits: dict[str, int] = {}
        self.call_timeout_s = 1.0
        self.capabilities: dict[str, object] = {}
        self.labels: tuple[tuple[str, str], ...] = ()
        self.instance_count, self.memory_bytes = count, 0
        self.idle = list(range(count))
        self.served: list[bytes] = []
        self.running: set[int] = set()
        self.most = 0
        self.hold: set[bytes] = set()
        self.go = threading.Event()
        self.trap = False
        self.trap_on: set[bytes] = set()
        self.lock = threading.Lock()
        self.fuel: dict[int, int] = {}

    def acquire(self, timeout: float) -> Recorder.Inst | None:
        with self.lock:
            assert self.idle, "the gate let in more calls than there are instances"
            return Recorder.Inst(self, self.idle.pop())

    def give_back(self, instance: Instance) -> None:
        assert isinstance(instance, Recorder.Inst)
        with self.lock:
            self.idle.append(instance.number)

    class Inst:
        def __init__(self, owner: Recorder, number: int) -> None:
            self.owner, self.number = owner, number

        @property
        def fuel_consumed(self) -> int:  # each call "uses" 10 per byte of its input
            return self.owner.fuel.get(self.number, 0)

        def handle(self, data: bytes, export: str = "handle") -> bytes:
            o = self.owner
            with o.lock:
                assert self.number not in o.running, "two threads on one Store"
                o.running.add(self.number)
                o.most = max(o.most, len(o.running))
                o.served.append(data)
            try:
                if data in o.hold:
                    assert o.go.wait(10)
                if o.trap or data in o.trap_on:
                    raise PluginTrap("unreachable", TrapKind.UNREACHABLE, "handle")
                return f"{o.version}:".encode() + data
            finally:
                with o.lock:
                    o.running.discard(self.number)
                    o.fuel[self.number] = o.fuel.get(self.number, 0) + 10 * len(data)

        def tick(self) -> None:
            pass

    tick_interval_s = 0.0

    @property
    def kept(self) -> KeptVersion:
        return KeptVersion(ActiveRecord(self.version, self.sha256), b"")

    def revive(self) -> Recorder:
        return Recorder(self.version, self.instance_count)

    def start(self) -> None:
        pass

    def shutdown(self) -> list[ShutdownFault]:
        return []

    def interrupt(self) -> None:
        self.go.set()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


def recorder_host(v: Recorder, **kw: object) -> PluginHost:
    host = PluginHost("hello", **kw)  # type: ignore[arg-type]
    host.trigger(Trigger.START)
    host.install(v)
    host.trigger(Trigger.STARTED)
    return host


def spawn(host: PluginHost, data: bytes, out: dict[bytes, bytes | Exception]) -> threading.Thread:
    def run() -> None:
        try:
            out[data] = host.call(data)
        except Exception as exc:
            out[data] = exc

    t = threading.Thread(target=run)
    t.start()
    return t


def test_calls_waiting_for_the_busy_instance_run_in_arrival_order() -> None:
    v = Recorder()
    v.hold = {b"first"}
    host = recorder_host(v)
    out: dict[bytes, bytes | Exception] = {}
    threads = [spawn(host, b"first", out)]
    assert host.wait_inflight(1, 5)
    names = [f"c{i}".encode() for i in range(6)]
    for i, name in enumerate(names, 1):
        threads.append(spawn(host, name, out))
        assert host.wait_held(i, 5)  # queued behind the ones before it
    assert v.served == [b"first"]
    v.go.set()
    for t in threads:
        t.join(10)
    assert v.served == [b"first", *names]
    assert out == {n: b"1.0.0:" + n for n in [b"first", *names]}
    assert v.most == 1


def test_the_gate_lets_in_one_call_per_instance_and_no_more() -> None:
    v = Recorder(count=2)
    v.hold = {b"a", b"b"}
    host = recorder_host(v)
    out: dict[bytes, bytes | Exception] = {}
    threads = [spawn(host, b"a", out), spawn(host, b"b", out)]
    assert host.wait_inflight(2, 5)  # both instances busy at once
    threads.append(spawn(host, b"c", out))
    assert host.wait_held(1, 5)
    assert sorted(v.served) == [b"a", b"b"]  # c waits: no third Store to run it on
    v.go.set()
    for t in threads:
        t.join(10)
    assert out == {b"a": b"1.0.0:a", b"b": b"1.0.0:b", b"c": b"1.0.0:c"}

    def hammer(k: int) -> None:
        for j in range(50):
            assert host.call(b"%d-%d" % (k, j)) == b"1.0.0:%d-%d" % (k, j)

    workers = [threading.Thread(target=hammer, args=(k,)) for k in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    assert len(v.served) == 3 + 400 and v.most == 2 and sorted(v.idle) == [0, 1]


def test_a_call_waiting_for_a_busy_instance_gives_up_after_the_hold_timeout() -> None:
    v = Recorder()
    v.hold = {b"slow"}
    host = recorder_host(v, hold_timeout_s=0.05)
    out: dict[bytes, bytes | Exception] = {}
    slow = spawn(host, b"slow", out)
    assert host.wait_inflight(1, 5)
    with pytest.raises(UnavailableError, match=r"every instance stayed busy for 0\.05s"):
        host.call(b"late")
    assert not host.wait_held(1, 0)  # it left the line
    v.go.set()
    slow.join(10)
    assert out == {b"slow": b"1.0.0:slow"}  # the running call was not disturbed
    assert host.call(b"next") == b"1.0.0:next" and host.state is State.RUNNING
    assert v.served == [b"slow", b"next"]


def test_calls_waiting_in_line_are_refused_when_the_running_call_fails_the_plugin() -> None:
    faults: list[str] = []
    v = Recorder()
    v.hold = {b"boom"}
    host = recorder_host(v, on_fault=lambda h, ver, exc: faults.append(exc.code))
    out: dict[bytes, bytes | Exception] = {}
    threads = [spawn(host, b"boom", out)]
    assert host.wait_inflight(1, 5)
    threads += [spawn(host, b"x", out), spawn(host, b"y", out)]
    assert host.wait_held(2, 5)
    v.trap = True
    v.go.set()
    for t in threads:
        t.join(10)
    assert isinstance(out[b"boom"], PluginTrap)
    for name in (b"x", b"y"):
        assert isinstance(out[name], UnavailableError) and "is failed" in str(out[name])
    assert v.served == [b"boom"] and faults == ["unreachable"]
    assert host.state is State.FAILED


def test_calls_waiting_for_the_old_version_are_served_by_the_new_one_after_a_swap() -> None:
    old, new = Recorder("1.0.0"), Recorder("2.0.0")
    old.hold = {b"in-flight"}
    host = recorder_host(old)
    out: dict[bytes, bytes | Exception] = {}
    threads = [spawn(host, b"in-flight", out)]
    assert host.wait_inflight(1, 5)
    threads += [spawn(host, b"queued-1", out), spawn(host, b"queued-2", out)]
    assert host.wait_held(2, 5)

    def swap() -> None:  # the swapper's order: drain, stop, start the new one, release
        host.trigger(Trigger.DRAIN)
        host.drain(5)
        host.trigger(Trigger.DRAINED)
        host.trigger(Trigger.START)
        host.install(new)
        host.trigger(Trigger.STARTED)
        host.release()

    swapper = threading.Thread(target=swap)
    swapper.start()
    assert host.wait_for(State.DRAINING, 5)
    old.go.set()  # the drain waits for the in-flight call, which finishes on the old version
    swapper.join(10)
    for t in threads:
        t.join(10)
    assert out == {
        b"in-flight": b"1.0.0:in-flight",
        b"queued-1": b"2.0.0:queued-1",
        b"queued-2": b"2.0.0:queued-2",
    }
    assert old.served == [b"in-flight"] and new.served == [b"queued-1", b"queued-2"]


def test_a_waiting_call_that_traps_reaches_its_caller_and_fails_the_plugin() -> None:
    faults: list[str] = []
    v = Recorder()
    v.hold, v.trap_on = {b"first"}, {b"second"}
    host = recorder_host(v, on_fault=lambda h, ver, exc: faults.append(exc.code))
    out: dict[bytes, bytes | Exception] = {}
    threads = [spawn(host, b"first", out)]
    assert host.wait_inflight(1, 5)
    threads.append(spawn(host, b"second", out))
    assert host.wait_held(1, 5)
    threads.append(spawn(host, b"third", out))
    assert host.wait_held(2, 5)
    v.go.set()
    for t in threads:
        t.join(10)
    assert out[b"first"] == b"1.0.0:first"
    assert isinstance(out[b"second"], PluginTrap)
    assert isinstance(out[b"third"], UnavailableError) and "is failed" in str(out[b"third"])
    assert v.served == [b"first", b"second"] and faults == ["unreachable"]
    assert host.state is State.FAILED


def test_each_caller_learns_the_fuel_of_its_own_call_whichever_thread_ran_it() -> None:
    v = Recorder()
    v.hold = {b"first"}
    host = recorder_host(v)
    fuel: dict[bytes, int] = {}

    def run(data: bytes) -> None:
        host.call(data)
        fuel[data] = CALL_FUEL.fuel

    threads = [threading.Thread(target=run, args=(b"first",))]
    threads[0].start()
    assert host.wait_inflight(1, 5)
    for i, data in enumerate((b"ab", b"abcd"), 1):  # run by the first caller's thread
        threads.append(threading.Thread(target=run, args=(data,)))
        threads[-1].start()
        assert host.wait_held(i, 5)
    v.go.set()
    for t in threads:
        t.join(10)
    assert fuel == {b"first": 50, b"ab": 20, b"abcd": 40}
    assert host.call_now(b"xyz", 1.0) == b"1.0.0:xyz" and CALL_FUEL.fuel == 30
