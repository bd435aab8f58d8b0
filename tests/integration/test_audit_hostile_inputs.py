"""The issue's attacks on the audit trail, replayed as written against the real daemon:

- a plugin with no capabilities asking ``env_get`` for a 406 KB key name, 12 times (it used to
  write 7.3 MB of audit log), and once for a 1.2 MB key (the call used to trap with "audit
  entry too large");
- a plugins.d file name with a newline and ESC, which used to forge the stderr line
  ``INFO forgeoned.audit: #99 plugin.installed plugin=backdoor version=6.6``.
"""

from __future__ import annotations

from pathlib import Path

from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, Daemon, Env, drop, manifest, plugin
from waiting import poll_until

from forgeoned.cli.devtools import make_signed_plugin

BIG, HUGE = 406 * 1024, 1200 * 1024
# handle: input of 1 byte asks env_get for a BIG-byte key, 2 bytes for a HUGE one
HOSTILE = f"""(module
  (import "forgeone" "env_get" (func $env_get (param i32 i32 i32 i32) (result i32)))
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 24)
  {lifecycle_exports()}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32) (local $n i32)
    (local.set $n (select (i32.const {BIG}) (i32.const {HUGE})
                          (i32.eq (local.get $l) (i32.const 1))))
    (memory.fill (i32.const 4096) (i32.const 75) (local.get $n))
    (i32.store (i32.const 0)
               (call $env_get (i32.const 4096) (local.get $n) (i32.const 0) (i32.const 0)))
    (drop (call $output (i32.const 0) (i32.const 4)))
    i32.const 0))"""
FORGED = "x\nINFO forgeoned.audit: #99 plugin.installed plugin=backdoor version=6.6\x1b[2K.wasm"


def _log_bytes(env: Env) -> int:
    return sum(p.stat().st_size for p in (env.root / "state/audit").glob("audit-*.jsonl"))


def test_huge_key_names_are_capped_and_never_trap(tmp_path: Path) -> None:
    env = Env(tmp_path)
    artifact = make_signed_plugin(HOSTILE, manifest("hostile", "1.0.0", capabilities={}), KEY)
    drop(env.plugins, "hostile.wasm", artifact)
    daemon = Daemon(env)
    try:
        daemon.ready()
        daemon.wait_until(lambda s: s.get("hostile", {}).get("state") == "running")
        before = _log_bytes(env)
        for _ in range(12):
            assert daemon.invoke("hostile", b"a") == (-2).to_bytes(4, "little", signed=True)
        grown = _log_bytes(env) - before
        assert daemon.invoke("hostile", b"ab") == (-2).to_bytes(4, "little", signed=True)
        assert daemon.status()["hostile"]["state"] == "running"  # no trap, no failure
    finally:
        assert daemon.stop() == 0
    print(f"12 calls with a {BIG >> 10} KiB key: audit log +{grown} bytes (was +7.3 MB)")
    assert grown < 32 * 1024
    denied = [e for e in env.audit_events() if e["event"] == "hostcall.denied"]
    summaries = [e["details"]["suppressed"] for e in denied if "suppressed" in e["details"]]
    assert summaries == [3]  # 13 denials: the throttle's budget of 10, the rest summarised
    for entry in denied[:10]:
        bounded = entry["details"]["bounded"]["details.target"]
        assert bounded["bytes"] in (BIG, HUGE) and len(bounded["sha256"]) == 64
        assert len(entry["details"]["target"]) <= 256 and len(entry["message"]) <= 1024


def test_a_file_name_cannot_forge_a_log_line(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    daemon = Daemon(env)
    try:
        daemon.ready()
        # same name and version, other bytes: the rejection names both files
        (env.plugins / FORGED).write_bytes(plugin("hello", "1.0.0", handle_extra="nop"))
        poll_until(
            lambda: any(e["event"] == "plugin.rejected" for e in env.audit_events()),
            30,
            "the rejection of the oddly named file",
        )
    finally:
        daemon.proc.terminate()
        assert daemon.proc.wait(30) == 0
        stderr = daemon.stderr()
        daemon.close()
    lines = stderr.splitlines()
    assert not [line for line in lines if line.startswith("INFO forgeoned.audit: #99")]
    assert "\x1b" not in stderr
    assert any("x\\x0aINFO forgeoned.audit: #99" in line for line in lines), stderr
    rejected = next(e for e in env.audit_events() if e["event"] == "plugin.rejected")
    assert "\n" not in rejected["message"] and "\\x1b[2K" in rejected["message"]
    # the file name is escaped where the rejection names it too (details.file)
    assert set(rejected["details"]["bounded"]) == {"message", "details.file"}
    assert "\n" not in rejected["details"]["file"] and "\\x1b[2K" in rejected["details"]["file"]
