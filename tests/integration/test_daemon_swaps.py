"""The daemon on real wasmtime, real files and a real watcher: swaps and bad inputs."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import SLOW_LIMITS, SPIN_FOREVER, Env, drop, in_process, plugin, spin

from forgeoned.cli.devtools import test_key
from forgeoned.core.desired import Candidate
from forgeoned.core.lifecycle import State
from forgeoned.core.swapper import Step
from forgeoned.errors import NotFoundError, PluginTrap, TrapKind


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_drop_swap_and_remove(env: Env) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        assert d.invoke("hello", b"a") == b"hello@1.0.0:a"
        drop(env.plugins, "hello.wasm", plugin("hello", "1.1.0"))
        d.events.wait("plugin.upgraded", "hello")
        assert d.invoke("hello", b"b") == b"hello@1.1.0:b"
        assert env.state()["active"]["hello"]["version"] == "1.1.0"
        assert env.state()["floors"]["hello"]["version"] == "1.1.0"
        (env.plugins / "hello.wasm").unlink()
        d.events.wait("plugin.removed", "hello")
        with pytest.raises(NotFoundError):
            d.invoke("hello")
        assert "hello" not in env.state()["active"]


def test_persisted_set_is_running_at_ready(env: Env) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
    with in_process(env) as d:
        assert d.daemon.ready.is_set()
        assert d.invoke("hello") == b"hello@1.0.0:x"
        started = d.parts.audit_log.entries()
        assert any("1 plugin restored" in e.get("message", "") for e in started)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (lambda: plugin("hello", "2.0.0", signed=False), "unsigned"),
        (lambda: plugin("hello", "2.0.0")[:-1] + b"X", "tampered"),
        (lambda: plugin("hello", "0.9.0"), "downgrade"),
        (lambda: plugin("hello", "1.0.0", init=1), "downgrade"),  # same version, other bytes
    ],
)
def test_production_rejections_keep_the_running_version(
    env: Env, bad: Callable[[], bytes], reason: str
) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        before = env.state()
        drop(env.plugins, "hello.wasm", bad())  # replaces the running version's file
        d.events.wait("plugin.rejected", reason=reason)
        d.sync()  # the loop step that emitted the event has also recorded the refusal
        assert d.parts.stats.rejected[reason] == 1
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.view("hello").state == "running"
        after = env.state()
        refused = after.pop("refused")
        assert before.pop("refused") == {} and after == before
        # a candidate that was read and refused is kept out by its hash (a file that did not
        # verify is no candidate at all: judged again when it changes)
        kinds = [r["kind"] for r in refused.get("hello", [])]
        assert kinds == (["rejected"] if reason == "downgrade" else [])


def test_untrusted_key_is_rejected(env: Env) -> None:
    from forgeoned.cli.devtools import make_signed_plugin

    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        other = make_signed_plugin(
            b"\0asm\1\0\0\0", {"name": "hello", "version": "3.0.0", "abi": 1}, test_key(9)
        )
        drop(env.plugins, "evil.wasm", other)
        d.events.wait("plugin.rejected", reason="untrusted_key")
        assert d.invoke("hello") == b"hello@1.0.0:x"


@pytest.mark.parametrize("failing", [{"init": 1}, {"start": 2}])
def test_new_version_whose_init_or_start_fails_is_rolled_back(
    env: Env, failing: dict[str, Any]
) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "hello-2.wasm", plugin("hello", "2.0.0", **failing))
        [event] = d.events.wait("plugin.rolled_back", "hello")
        assert event.version == "2.0.0" and event.reason == "status_nonzero"
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert env.state()["active"]["hello"]["version"] == "1.0.0"
        d.sync()  # a rescan does not retry the same failed bytes
        assert d.events.labels("hello").count("plugin.rolled_back") == 1


def test_same_version_dropped_twice_is_one_plugin(env: Env) -> None:
    data = plugin("hello", "1.0.0")
    drop(env.plugins, "a.wasm", data)
    with in_process(env) as d:
        drop(env.plugins, "b.wasm", data)
        d.sync()
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.events.labels("hello") == ["plugin.installed"]  # no second swap, no reject
        (env.plugins / "a.wasm").unlink()
        d.sync()
        assert d.invoke("hello") == b"hello@1.0.0:x"  # b.wasm still provides it


def test_same_version_with_other_bytes_in_a_second_file_is_refused_once(env: Env) -> None:
    drop(env.plugins, "a.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "b.wasm", plugin("hello", "1.0.0", init=1))  # other bytes
        [event] = d.events.wait("plugin.rejected", "hello", reason="downgrade")
        assert "b.wasm: same version as a.wasm" in event.message
        d.sync()
        assert d.events.labels("hello").count("plugin.rejected") == 1
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.parts.stats.rejected["downgrade"] == 1


def test_two_files_with_the_same_name_highest_wins(env: Env) -> None:
    drop(env.plugins, "hello-1.wasm", plugin("hello", "1.0.0"))
    drop(env.plugins, "hello-2.wasm", plugin("hello", "2.0.0"))
    with in_process(env) as d:
        assert d.invoke("hello") == b"hello@2.0.0:x"
        (env.plugins / "hello-2.wasm").unlink()
        # the remaining 1.0.0 would be a downgrade: refused, 2.0.0 keeps serving
        d.events.wait("plugin.rejected", "hello", reason="downgrade")
        assert d.invoke("hello") == b"hello@2.0.0:x"


def test_a_file_written_slowly_in_pieces_is_read_once_complete(env: Env) -> None:
    data = plugin("slow", "1.0.0")
    with in_process(env) as d:
        path = env.plugins / "slow.wasm"
        with path.open("wb") as f:
            for i in range(0, len(data), 97):
                f.write(data[i : i + 97])
                f.flush()
                time.sleep(0.03)  # the writer is slow on purpose (the input, not a wait)
        d.events.wait("plugin.installed", "slow")
        assert d.invoke("slow") == b"slow@1.0.0:x"
        assert "plugin.rejected" not in d.events.labels()


def test_file_replaced_repeatedly_during_swaps_ends_on_the_last(env: Env) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        for minor in range(1, 6):
            drop(env.plugins, "hello.wasm", plugin("hello", f"1.{minor}.0"))
        d.events.wait("plugin.upgraded", "hello", version="1.5.0")
        assert d.invoke("hello") == b"hello@1.5.0:x"
        assert env.state()["active"]["hello"]["version"] == "1.5.0"


@pytest.mark.parametrize("step", [Step.COMPILE, Step.DRAIN, Step.COMMIT])
def test_file_replaced_in_the_middle_of_a_swap(env: Env, step: Step) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        v3 = plugin("hello", "3.0.0")

        def replace_during(at: Step, cand: Candidate) -> None:
            if at is step and cand.version == "2.0.0":
                drop(env.plugins, "hello.wasm", v3)  # the operator is faster than the swap

        d.parts.swapper.fault = replace_during
        drop(env.plugins, "hello.wasm", plugin("hello", "2.0.0"))
        d.events.wait("plugin.upgraded", "hello", version="3.0.0")
        assert d.invoke("hello") == b"hello@3.0.0:x"
        record = env.state()["active"]["hello"]
        assert record["version"] == "3.0.0"
        assert record["sha256"] == hashlib.sha256(v3).hexdigest()
        versions = [e.version for e in d.events.seen if e.plugin == "hello"]
        assert "plugin.rolled_back" not in d.events.labels("hello")
        assert versions[-1] == "3.0.0"


@pytest.mark.parametrize(
    ("prologue", "outcome"),
    [(spin(20_000_000), "answered"), (SPIN_FOREVER, "interrupted")],  # drain_timeout_s = 2
    ids=["answered", "interrupted"],
)
def test_deletion_while_calls_are_in_flight(env: Env, prologue: str, outcome: str) -> None:
    busy = plugin("busy", "1.0.0", handle_extra=prologue, limits=SLOW_LIMITS)
    drop(env.plugins, "busy.wasm", busy)
    with in_process(env) as d:
        results: list[bytes | Exception] = []

        def call() -> None:
            try:
                results.append(d.invoke("busy", b"y"))
            except Exception as exc:
                results.append(exc)

        host = d.parts.plugins.host("busy")
        t = threading.Thread(target=call)
        t.start()
        assert host.wait_inflight(1, 10)
        (env.plugins / "busy.wasm").unlink()
        d.events.wait("plugin.removed", "busy")
        t.join(30)
        if outcome == "answered":  # finished within the drain timeout
            assert results == [b"busy@1.0.0:"]
        else:  # interrupted after the drain timeout, with the trap kind saying so
            assert len(results) == 1 and isinstance(results[0], PluginTrap)
            assert results[0].kind is TrapKind.INTERRUPTED
        with pytest.raises(NotFoundError):
            d.invoke("busy")
        assert "busy" not in env.state()["active"]
        assert len(d.parts.plugins) == 0


def test_trapping_version_is_restarted_then_quarantined_others_unaffected(env: Env) -> None:
    env.write_config("[restart]\nmax_failures = 2\nbackoff_initial_s = 0.01\njitter = 0")
    drop(env.plugins, "ok.wasm", plugin("ok", "1.0.0"))
    drop(env.plugins, "bad.wasm", plugin("bad", "1.0.0"))
    with in_process(env) as d:
        drop(env.plugins, "bad.wasm", plugin("bad", "1.1.0", handle_extra="unreachable"))
        d.events.wait("plugin.upgraded", "bad")
        host = d.parts.plugins.host("bad")
        for n in (1, 2, 3):  # max_failures = 2: the third failure in the window quarantines
            with pytest.raises(PluginTrap):
                d.invoke("bad")
            d.events.wait("plugin.failed", "bad", count=n)
            if n < 3:
                d.events.wait("plugin.restarted", "bad", count=n)
                assert host.wait_for(State.RUNNING, 10)
        d.events.wait("plugin.quarantined", "bad")
        assert host.wait_for(State.QUARANTINED, 10)  # audited first, then persisted, then shown
        assert d.view("bad").state == "quarantined"
        assert "bad" in env.state()["quarantined"]
        assert d.invoke("ok") == b"ok@1.0.0:x"
        # a new version lifts the quarantine
        drop(env.plugins, "bad.wasm", plugin("bad", "1.2.0"))
        d.events.wait("plugin.upgraded", "bad", version="1.2.0")
        assert d.invoke("bad") == b"bad@1.2.0:x"
        assert "bad" not in env.state()["quarantined"]
