"""What each lifecycle export's non-zero status does, through the real daemon (in-process).

The table in docs/plugin-authoring.md, row by row: ``init``/``start`` → the version does not
come up and the old one keeps serving (for ``start`` with its memory: it was never stopped);
``pause``/``resume`` → refused, the state stays as it was, the caller gets the status;
``stop``/``unload`` → audited (``plugin.failed``, ``stop_status``/``unload_status``) and the
swap, restart or removal completes; ``tick`` → counted as an error, nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, Env, InProcess, drop, in_process, manifest

from forgeoned.cli import main
from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.errors import ApplicationError, PluginPausedError

# A status that is non-zero the first time the export runs, 0 afterwards.
FIRST_TIME_ONLY = """(global.set ${g} (i32.add (global.get ${g}) (i32.const 1)))
    (if (result i32) (i32.eq (global.get ${g}) (i32.const 1))
      (then (i32.const {status})) (else (i32.const 0)))"""


def first_time(export: str, status: int) -> str:
    return FIRST_TIME_ONLY.format(g=f"n_{export}", status=status)


def lifecycle_plugin(
    name: str, version: str, bodies: dict[str, str] | None = None, tick: str = "", **extra: object
) -> bytes:
    """``handle`` outputs ``NAME@VERSION:`` and how many calls this instance served so far
    (its memory), as one digit; ``bodies`` replaces lifecycle export bodies."""
    tag = f"{name}@{version}:"
    data = "".join(f"\\{b:02x}" for b in tag.encode())
    globals_ = "\n".join(f"(global $n_{e} (mut i32) (i32.const 0))" for e in ("pause", "resume"))
    tick_fn = f'(func (export "tick") (result i32) {tick})' if tick else ""
    text = f"""(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  {globals_}
  (data (i32.const 16) "{data}")
  {lifecycle_exports(bodies)}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const {16 + len(tag)}) (i32.add (i32.const 48) (global.get $calls)))
    (drop (call $output (i32.const 16) (i32.const {len(tag) + 1})))
    i32.const 0)
  {tick_fn})"""
    m = manifest(name, version, capabilities={"log": True}, **extra)
    return make_signed_plugin(text, m, KEY)


def serving(d: InProcess, name: str) -> bytes:
    return d.invoke(name, b"")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_init_non_zero_rolls_back_and_the_old_version_serves(env: Env) -> None:
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0"))
    with in_process(env) as d:
        assert serving(d, "p") == b"p@1.0.0:1"
        drop(env.plugins, "p-2.wasm", lifecycle_plugin("p", "2.0.0", {"init": "i32.const 3"}))
        [event] = d.events.wait("plugin.rolled_back", "p")
        assert (event.version, event.reason) == ("2.0.0", "status_nonzero")
        assert serving(d, "p") == b"p@1.0.0:2"  # untouched: the same instance
        assert env.state()["active"]["p"]["version"] == "1.0.0"


def test_start_non_zero_rolls_back_and_the_old_version_keeps_its_memory(env: Env) -> None:
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0"))
    with in_process(env) as d:
        assert serving(d, "p") == b"p@1.0.0:1"
        drop(env.plugins, "p-2.wasm", lifecycle_plugin("p", "2.0.0", {"start": "i32.const 4"}))
        [event] = d.events.wait("plugin.rolled_back", "p")
        assert (event.version, event.reason) == ("2.0.0", "status_nonzero")
        assert serving(d, "p") == b"p@1.0.0:2"  # drained, never stopped: it goes on counting
        assert "plugin.failed" not in d.events.labels("p")  # v1 was not stopped at all
        assert env.state()["active"]["p"]["version"] == "1.0.0"


def test_pause_refused_stays_running_and_the_caller_gets_the_status(env: Env) -> None:
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0", {"pause": first_time("pause", 7)}))
    with in_process(env) as d:
        with pytest.raises(ApplicationError) as refused:
            d.daemon.backend.pause("p", "ops")
        assert (refused.value.export, refused.value.status) == ("pause", 7)
        assert d.view("p").state == "running"
        assert serving(d, "p") == b"p@1.0.0:1"  # calls go through as before
        # the pause's own record comes first (fail-closed), then where the plugin stayed
        assert d.events.labels("p")[-2:] == ["plugin.paused", "plugin.resumed"]
        stayed = d.events.seen[-1]
        assert (stayed.reason, stayed.details) == ("pause_status", {"status": 7})
        assert "plugin.failed" not in d.events.labels("p")
        d.daemon.backend.pause("p", "ops")  # it agrees the second time
        assert d.view("p").state == "paused"


def test_pause_refused_through_forgeonectl_exits_11(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0", {"pause": first_time("pause", 7)}))
    with in_process(env) as d:
        assert main(["--socket", env.socket, "pause", "p"]) == 11
        err = capsys.readouterr().err
        assert err == "forgeonectl: plugin p: 'pause' returned status 7; it stays as it was\n"
        assert d.view("p").state == "running"
        actions = [e for e in d.events.seen if e.event.label == "control.action"]
        assert actions[-1].reason == "application_error"


def test_resume_refused_stays_paused(env: Env) -> None:
    bodies = {"resume": first_time("resume", 5)}
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0", bodies))
    with in_process(env) as d:
        d.daemon.backend.pause("p", "ops")
        with pytest.raises(ApplicationError) as refused:
            d.daemon.backend.resume("p", "ops")
        assert (refused.value.export, refused.value.status) == ("resume", 5)
        assert d.view("p").state == "paused"
        with pytest.raises(PluginPausedError):
            serving(d, "p")
        assert d.events.labels("p")[-2:] == ["plugin.resumed", "plugin.paused"]
        assert d.events.seen[-1].reason == "resume_status"
        d.daemon.backend.resume("p", "ops")  # it agrees the second time
        assert d.view("p").state == "running"
        assert serving(d, "p") == b"p@1.0.0:1"


@pytest.mark.parametrize("export", ["stop", "unload"])
def test_stop_or_unload_non_zero_is_audited_and_the_upgrade_completes(
    env: Env, export: str
) -> None:
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0", {export: "i32.const 9"}))
    with in_process(env) as d:
        drop(env.plugins, "p-2.wasm", lifecycle_plugin("p", "2.0.0"))
        d.events.wait("plugin.upgraded", "p")
        [failed] = d.events.wait("plugin.failed", "p")
        assert (failed.version, failed.reason) == ("1.0.0", f"{export}_status")
        assert failed.details == {"export": export, "status": 9}
        assert serving(d, "p") == b"p@2.0.0:1"
        assert d.view("p").state == "running" and d.view("p").stats.restarts == 0
        assert env.state()["active"]["p"]["version"] == "2.0.0"


def test_stop_non_zero_on_restart_and_removal_is_audited_and_both_complete(env: Env) -> None:
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0", {"stop": "i32.const 9"}))
    with in_process(env) as d:
        d.daemon.backend.restart("p", "ops")
        [failed] = d.events.wait("plugin.failed", "p")
        assert failed.reason == "stop_status"
        assert serving(d, "p") == b"p@1.0.0:1"  # a fresh instance
        d.daemon.backend.remove("p", "ops")
        d.events.wait("plugin.removed", "p")
        assert len(d.events.wait("plugin.failed", "p", count=2)) == 2
        assert "p" not in env.state()["active"]
        assert d.parts.plugins.get("p") is None


def test_tick_non_zero_is_counted_and_nothing_else(env: Env) -> None:
    drop(env.plugins, "p.wasm", lifecycle_plugin("p", "1.0.0", tick="i32.const 2",
                                                 tick_interval_ms=20))  # fmt: skip
    with in_process(env) as d:
        assert d.parts.ticks.wait_runs(5, 30)
        view = d.view("p")
        assert view.stats.calls[("tick", "error")] >= 5
        assert view.state == "running" and view.stats.restarts == 0
        assert "plugin.failed" not in d.events.labels("p")
        assert serving(d, "p") == b"p@1.0.0:1"
