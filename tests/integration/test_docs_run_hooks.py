"""Every command of docs/plugin-authoring.md's ``run`` with the provider hooks (the block
marked ``<!-- doc-test: run-hooks author -->``) runs as written and exits 0: a named
function, ``--set``, an outbound request to a local server with a bound secret, recorded,
then replayed after the server is gone. Only the documented port changes (the server's)."""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path

import pytest
from abi_wat import ALLOC, lifecycle_exports
from doc_steps import PLUGIN_AUTHORING, doc_test_blocks
from hooks_wat import hooks_plugin
from http_kit import CountingServer

from forgeoned.cli import main
from forgeoned.cli.devtools import package_plugin
from forgeoned.cli.exitcodes import OK
from forgeoned.core.http_wire import decode_response

PREFIX = '{"method":"GET","url":"'
SUFFIX = '","headers":[["authorization","Bearer {{secret:api-token}}"]]}\n'


def _wat_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# handle(url): GET url with the api-token bound into Authorization; outputs the response, or
# "refused" and status 1 if http_request failed.
FETCHER = f"""(module
  (import "forgeone" "http_request" (func $http (param i32 i32 i32 i32) (result i32)))
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "{_wat_text(PREFIX)}")
  (data (i32.const 64) "{_wat_text(SUFFIX)}")
  (data (i32.const 200) "refused")
  {lifecycle_exports()}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32) (local $r i32)
    (memory.copy (i32.const 4096) (i32.const 16) (i32.const {len(PREFIX)}))
    (memory.copy (i32.const {4096 + len(PREFIX)}) (local.get $p) (local.get $l))
    (memory.copy (i32.add (i32.const {4096 + len(PREFIX)}) (local.get $l)) (i32.const 64)
                 (i32.const {len(SUFFIX)}))
    (local.set $r (call $http (i32.const 4096)
      (i32.add (i32.const {len(PREFIX) + len(SUFFIX)}) (local.get $l))
      (i32.const 8192) (i32.const 65536)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (drop (call $output (i32.const 200) (i32.const 7))) (return (i32.const 1))))
    (drop (call $output (i32.const 8192) (local.get $r)))
    i32.const 0))"""


def _commands(script: str, port: int) -> list[list[str]]:
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line.replace("127.0.0.1:8080", f"127.0.0.1:{port}"), comments=True)
        if words:
            assert words[0] == "forgeonectl", line
            out.append(words[1:])
    return out


def test_the_documented_run_with_hooks_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (step,) = doc_test_blocks("run-hooks", PLUGIN_AUTHORING)
    monkeypatch.chdir(tmp_path)
    Path("checker.wasm").write_bytes(hooks_plugin(name="checker"))
    Path("api-token.txt").write_text("t0ken\n")
    outputs = []
    with CountingServer() as server:
        origin = f"http://127.0.0.1:{server.port}"
        fetcher = {"name": "fetcher", "version": "1.0.0", "abi": 1,
                   "capabilities": {"http": [origin]}}  # fmt: skip
        Path("fetcher.wasm").write_bytes(package_plugin(FETCHER, fetcher))
        commands = _commands(step.script, server.port)
        assert len(commands) == 4 and "--replay" in commands[-1]
        for argv in commands[:-1]:
            code = main(argv)
            out, err = capsys.readouterr()
            assert code == OK, (argv, out, err)
            outputs.append(out)
        assert server.requests[0][2]["authorization"] == "Bearer t0ken"
    code = main(commands[-1])  # the server is gone: the replay needs none
    out, err = capsys.readouterr()
    assert code == OK, err
    assert server.connections == 1 and out == outputs[2]
    assert outputs[0] == "3\n3\n3\n"
    assert json.loads(outputs[1])["exports"][2]["output"] == "5"
    assert decode_response(outputs[2].encode().rstrip(b"\n"))[::2] == (200, b"hello")
    tape = Path("fetch.tape.json").read_text()
    assert "t0ken" not in tape and base64.b64encode(b"t0ken").decode() not in tape
