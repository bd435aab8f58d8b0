"""``forgeonectl run FILE``: the whole lifecycle in-process in the production sandbox; per
export status, fuel, memory and host calls (denials included); exit codes by outcome;
``--record``/``--replay`` make a run that reads the clock, random bytes, env, a secret and
the kv store reproducible, with the secret never written down."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import manifest

from forgeoned.cli import main
from forgeoned.cli.devtools import package_plugin
from forgeoned.cli.exitcodes import APPLICATION_ERROR, FAILURE, OK, PLUGIN_FAULT, REJECTED

IMPORTS = """
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (import "forgeone" "time_now_ms" (func $now (result i64)))
  (import "forgeone" "random_fill" (func $random (param i32 i32) (result i32)))
  (import "forgeone" "env_get" (func $env (param i32 i32 i32 i32) (result i32)))
  (import "forgeone" "secret_get" (func $secret (param i32 i32 i32 i32) (result i32)))
  (import "forgeone" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i32)))
  (import "forgeone" "log" (func $log (param i32 i32 i32) (result i32)))"""


def world_plugin(handle_status: int = 0, trap: bool = False, init: int = 0) -> str:
    """``handle`` outputs 8 bytes of time, 8 random bytes, $TZ, the kv value of "k" and the
    input; it reads the secret "token" (without printing it) and logs "hi"."""
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 16) "TZ")
  (data (i32.const 24) "token")
  (data (i32.const 32) "k")
  (data (i32.const 40) "hi")
  {lifecycle_exports({"init": f"i32.const {init}"})}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32) (local $n i32)
    {"unreachable" if trap else ""}
    (i64.store (i32.const 100) (call $now))
    (drop (call $random (i32.const 108) (i32.const 8)))
    (drop (call $output (i32.const 100) (i32.const 16)))
    (local.set $n (call $env (i32.const 16) (i32.const 2) (i32.const 200) (i32.const 64)))
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (drop (call $output (i32.const 200) (local.get $n)))))
    (drop (call $secret (i32.const 24) (i32.const 5) (i32.const 300) (i32.const 64)))
    (local.set $n (call $kv_get (i32.const 32) (i32.const 1) (i32.const 400) (i32.const 64)))
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (drop (call $output (i32.const 400) (local.get $n)))))
    (drop (call $log (i32.const 1) (i32.const 40) (i32.const 2)))
    (drop (call $output (local.get $p) (local.get $l)))
    i32.const {handle_status}))"""


CAPS = {"log": True, "clock": True, "random": True, "env": ["TZ"], "secrets": ["token"],
        "kv": {"quota_bytes": 4096}}  # fmt: skip


def _write(tmp_path: Path, name: str = "world", **wat: Any) -> Path:
    path = tmp_path / f"{name}.wasm"
    m = manifest(name, "1.0.0", capabilities=CAPS)
    path.write_bytes(package_plugin(world_plugin(**wat), m))
    return path


def _ctl(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_reports_each_export_and_denies_what_is_not_granted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path)
    code, out, _ = _ctl(capsys, "run", path, "--input", "ping", "--loop", "2", "--json")
    assert code == OK
    report = json.loads(out)
    assert [e["export"] for e in report["exports"]] == [
        "init", "start", "handle", "handle", "stop", "unload",
    ]  # fmt: skip
    assert all(e["status"] == "ok" for e in report["exports"])
    handle = report["exports"][2]
    assert handle["output"].endswith("ping") and handle["fuel"] > 0
    assert handle["memory_peak_bytes"] == 65536
    # neither --env TZ nor --secret token given: both denied, and the denials are reported
    assert handle["hostcalls"]["env_get denied"] == 1
    assert handle["hostcalls"]["secret_get denied"] == 1
    assert handle["hostcalls"]["kv_get not_found"] == 1
    assert any("env_get(TZ)" in d for d in report["denials"])
    assert report["logs"] == ["[1] hi", "[1] hi"]


def test_exit_codes_by_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _ctl(capsys, "run", _write(tmp_path, "answer", handle_status=7), "--json")
    assert code == APPLICATION_ERROR
    assert json.loads(out)["exports"][2]["status"] == "status 7"
    code, out, err = _ctl(capsys, "run", _write(tmp_path, "trapper", trap=True), "--json")
    assert code == PLUGIN_FAULT and json.loads(out)["fault"] == "unreachable"
    assert [e["export"] for e in json.loads(out)["exports"]][-1] == "unload"
    code, out, err = _ctl(capsys, "run", _write(tmp_path, "noinit", init=3), "--json")
    report = json.loads(out)
    assert code == PLUGIN_FAULT and report["fault"] == "status_nonzero"
    assert [e["export"] for e in report["exports"]] == ["init", "unload"]
    assert "'init' returned status 3" in err
    code, _, err = _ctl(capsys, "run", _write(tmp_path), "--fn", "greet")
    assert code == FAILURE and "has no function 'greet' (its manifest lists: none)" in err
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(package_plugin(
        f'(module (memory (export "memory") 1) {lifecycle_exports(omit=("unload",))})',
        manifest("broken", "1.0.0"),
    ))  # fmt: skip
    code, _, err = _ctl(capsys, "run", broken)
    assert code == REJECTED and "missing export 'unload'" in err


def test_record_then_replay_reproduces_the_run_without_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path)
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    kv = tmp_path / "kv"
    tape = tmp_path / "run.tape.json"
    code, first, _ = _ctl(
        capsys, "run", path, "--input", "x", "--env", "TZ=Europe/Paris", "--secret",
        f"token={secret}", "--kv-dir", kv, "--record", tape, "--json",
    )  # fmt: skip
    assert code == OK
    recorded = tape.read_text()
    assert "s3cr3t" not in recorded and '"redacted": true' in recorded
    fns = [i["fn"] for i in json.loads(recorded)["interactions"]]
    assert fns == ["time_now_ms", "random_fill", "env_get", "secret_get", "kv_get"]
    output = json.loads(first)["exports"][2]["output_base64"]
    assert b"Europe/Paris" in base64.b64decode(output)
    # replayed with another environment: the recorded answers, byte for byte
    code, again, _ = _ctl(
        capsys, "run", path, "--input", "x", "--env", "TZ=UTC", "--secret",
        f"token={secret}", "--replay", tape, "--json",
    )  # fmt: skip
    assert code == OK and json.loads(again)["exports"][2]["output_base64"] == output
    # a replay that diverges (two calls, one recorded) faults at the interaction it misses
    code, _, err = _ctl(
        capsys, "run", path, "--loop", "2", "--env", "TZ=UTC", "--secret", f"token={secret}",
        "--replay", tape, "--json",
    )  # fmt: skip
    assert code == PLUGIN_FAULT and "replay diverged at interaction 6" in err
