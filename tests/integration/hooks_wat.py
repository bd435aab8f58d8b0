"""An inline-WAT plugin using every provider hook (named functions, config_get, metrics), for
the daemon tests of issue 13. Results of host calls come back as one character:
``'0' + (result + 3)``: ``0`` is -3 (invalid), ``1`` -2 (denied), ``2`` -1, ``3`` success."""

from __future__ import annotations

import json
from typing import Any

from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY

from forgeoned.cli.devtools import make_signed_plugin, sign_bytes, to_wasm
from forgeoned.core.manifest_section import SECTION_NAME
from forgeoned.core.wasm_sections import encode_custom_section

FUNCTIONS = ["check", "observe", "set_requests", "undeclared", "gauge", "fail"]


def _metric_call(fn: str, name_at: int, name_len: int, labels: str, value: str) -> str:
    return (
        f"(call $code (call ${fn} (i32.const {name_at}) (i32.const {name_len}) {labels} "
        f"(f64.const {value})))"
    )


HOOKS_WAT = f"""(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (import "forgeone" "config_get" (func $config_get (param i32 i32 i32 i32) (result i32)))
  (import "forgeone" "metric_add"
    (func $metric_add (param i32 i32 i32 i32 f64) (result i32)))
  (import "forgeone" "metric_set"
    (func $metric_set (param i32 i32 i32 i32 f64) (result i32)))
  (import "forgeone" "metric_observe"
    (func $metric_observe (param i32 i32 i32 i32 f64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "requests")
  (data (i32.const 120) "latency_seconds")
  (data (i32.const 140) "queue")
  (data (i32.const 160) "nope")
  (data (i32.const 180) "none")
  (data (i32.const 200) "partial")
  {lifecycle_exports()}
  {ALLOC}
  (func $code (param $r i32) (result i32)
    (i32.store8 (i32.const 900) (i32.add (i32.const 51) (local.get $r)))
    (drop (call $output (i32.const 900) (i32.const 1)))
    i32.const 0)
  ;; handle: the config value of the key given as input ("none" when -1)
  (func (export "handle") (param $p i32) (param $l i32) (result i32)
    (local $n i32)
    (local.set $n (call $config_get (local.get $p) (local.get $l) (i32.const 2048)
                                    (i32.const 4096)))
    (if (i32.lt_s (local.get $n) (i32.const 0))
      (then (drop (call $output (i32.const 180) (i32.const 4))))
      (else (drop (call $output (i32.const 2048) (local.get $n)))))
    i32.const 0)
  ;; check: requests += 1 with the input as its labels text
  (func (export "check") (param $p i32) (param $l i32) (result i32)
    {_metric_call("metric_add", 100, 8, "(local.get $p) (local.get $l)", "1")})
  (func (export "observe") (param $p i32) (param $l i32) (result i32)
    {_metric_call("metric_observe", 120, 15, "(i32.const 0) (i32.const 0)", "0.05")})
  (func (export "set_requests") (param $p i32) (param $l i32) (result i32)
    {_metric_call("metric_set", 100, 8, "(local.get $p) (local.get $l)", "5")})
  (func (export "undeclared") (param $p i32) (param $l i32) (result i32)
    {_metric_call("metric_add", 160, 4, "(i32.const 0) (i32.const 0)", "1")})
  (func (export "gauge") (param $p i32) (param $l i32) (result i32)
    {_metric_call("metric_set", 140, 5, "(i32.const 0) (i32.const 0)", "7.5")})
  (func (export "fail") (param $p i32) (param $l i32) (result i32)
    (drop (call $output (i32.const 200) (i32.const 7)))
    i32.const 5))"""


def hooks_manifest(version: str = "1.0.0", **over: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": "edge",
        "version": version,
        "abi": 1,
        "functions": FUNCTIONS,
        "labels": {"team": "edge"},
        "config": {
            "endpoint": {"type": "string", "default": "https://reports.example"},
            "retries": {"type": "int", "default": 3},
            "ratio": {"type": "float"},
            "token": {"type": "string", "secret": True},
        },
        "metrics": {
            "requests": {
                "type": "counter",
                "help": "Requests by verdict",
                "labels": {"verdict": ["allow", "deny"]},
            },
            "latency_seconds": {"type": "histogram", "buckets": [0.01, 0.1, 1.0]},
            "queue": {"type": "gauge", "help": "Queue depth"},
        },
    }
    manifest.update(over)
    return manifest


def hooks_plugin(version: str = "1.0.0", wat: str = HOOKS_WAT, **over: Any) -> bytes:
    return make_signed_plugin(wat, hooks_manifest(version, **over), KEY)


def unchecked_hooks_plugin(version: str = "1.0.0", **over: Any) -> bytes:
    """As :func:`hooks_plugin`, but the manifest is embedded as it is, unvalidated (what a
    careless or hostile packager could ship), and signed."""
    raw = json.dumps(hooks_manifest(version, **over)).encode()
    return sign_bytes(to_wasm(HOOKS_WAT) + encode_custom_section(SECTION_NAME, raw), KEY)
