"""The operator's capability policy narrows what a manifest asks for (real host calls)."""

from __future__ import annotations

from pathlib import Path

import pytest
from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, Env, drop, in_process

from forgeoned.cli.devtools import make_signed_plugin

ENV_PLUGIN = f"""(module
  (import "forgeone" "env_get" (func $env_get (param i32 i32 i32 i32) (result i32)))
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "TZ")
  (data (i32.const 120) "denied")  ;; any negative result (denied, not found)
  {lifecycle_exports()}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32)
    (local.set $l (call $env_get (i32.const 100) (i32.const 2) (i32.const 200) (i32.const 64)))
    (if (i32.lt_s (local.get $l) (i32.const 0))
      (then (drop (call $output (i32.const 120) (i32.const 6))))
      (else (drop (call $output (i32.const 200) (local.get $l)))))
    i32.const 0))"""


def env_plugin() -> bytes:
    manifest = {"name": "tz", "version": "1.0.0", "abi": 1, "capabilities": {"env": ["TZ"]}}
    return make_signed_plugin(ENV_PLUGIN, manifest, KEY)


@pytest.mark.parametrize(
    ("config", "expected", "denied"),
    [
        ('plugin_env = ["TZ"]\n[capabilities.tz]\nenv = ["TZ"]', b"Europe/Paris", False),
        ('plugin_env = ["TZ"]', b"denied", True),  # the default policy grants no env
        # granted, but the daemon does not pass TZ through: "not found", not "denied"
        ('[capabilities.tz]\nenv = ["TZ"]', b"denied", False),
        ('plugin_env = ["TZ"]\n[capabilities.default]\nenv = ["TZ"]', b"Europe/Paris", False),
    ],
)
def test_env_needs_manifest_policy_and_passthrough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, expected: bytes, denied: bool
) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    env = Env(tmp_path)
    env.write_config(config)
    drop(env.plugins, "tz.wasm", env_plugin())
    with in_process(env) as d:
        assert d.invoke("tz") == expected
        events = [e for e in d.events.seen if e.event.label == "hostcall.denied"]
        assert bool(events) == denied
