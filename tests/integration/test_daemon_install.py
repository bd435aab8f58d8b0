"""Issue 11, item 3 (and the metrics of item 6), replayed through the real daemon: ``install``
tells the truth about its own sha256.

forgeonectl and raw HTTP talk to an in-process daemon over its real control socket. Each case
checks the exit code and answer, that the error's code is the reason of the audit event that
recorded the refusal, that the refused file is not left in plugins.d, and that nothing else
changed: the active version answers, the state file and the audit chain agree.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from abi_wat import lifecycle_exports
from daemon_kit import KEY, Env, InProcess, drop, in_process, manifest, plugin, plugin_wat

from forgeoned.cli import main
from forgeoned.cli.devtools import make_signed_plugin, package_plugin
from forgeoned.core import signature as sig

FAULT, REJECTED = 8, 3  # forgeonectl's exit codes (docs/forgeonectl.md)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    (tmp_path / "d").mkdir()
    env = Env(tmp_path / "d")
    text = env.config.read_text()
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))
    return env


@pytest.fixture
def daemon(env: Env) -> Iterator[InProcess]:
    with in_process(env) as d:
        yield d


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def post(env: Env, data: bytes, filename: str, headers: dict[str, str] | None = None,
         wait: str | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """``POST /v1/plugins`` as curl would send it: (status, JSON body)."""
    conn = _Unix(env.socket)
    query = f"filename={filename}" + (f"&wait={wait}" if wait is not None else "")
    try:
        conn.request("POST", f"/v1/plugins?{query}", body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def ctl(env: Env, *args: str) -> int:
    return main(["--socket", env.socket, *args])


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def audit(d: InProcess, event: str, plugin_name: str) -> list[dict[str, Any]]:
    """The entries of ``event`` about ``plugin_name`` on disk, after checking the chain."""
    assert d.parts.audit_log.verify().ok
    return [
        e for e in d.env.audit_events() if e["event"] == event and e.get("plugin") == plugin_name
    ]


def metrics(d: InProcess) -> list[str]:
    port = d.daemon.metrics.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        body: bytes = answer.read()
    return body.decode().splitlines()


def no_unload(name: str, version: str) -> bytes:
    text = f'(module (memory (export "memory") 1) {lifecycle_exports(omit=("unload",))})'
    return make_signed_plugin(text, manifest(name, version), KEY)


def files(env: Env) -> list[str]:
    return sorted(p.name for p in env.plugins.iterdir() if not p.name.startswith("."))


def test_an_install_that_runs_answers_201_and_exits_0(
    daemon: InProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = daemon.env
    status, body = post(env, plugin("echo", "1.0.0"), "echo.wasm")
    assert status == 201 and body["outcome"] == "running"
    assert (body["installed"]["version"], body["installed"]["state"]) == ("1.0.0", "running")
    path = write(tmp_path, "echo-2.wasm", plugin("echo", "2.0.0"))
    assert ctl(env, "install", str(path)) == 0
    assert capsys.readouterr().out.startswith("installed echo 2.0.0 (running), sha256 ")
    assert daemon.invoke("echo") == b"echo@2.0.0:x"
    assert env.state()["active"]["echo"]["version"] == "2.0.0"
    assert [e["actor"] for e in audit(daemon, "plugin.upgraded", "echo")] == ["uid=0(root)"]


def test_a_first_install_whose_init_fails_exits_8_and_leaves_nothing(
    daemon: InProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = daemon.env
    path = write(tmp_path, "bad.wasm", plugin("bad", "1.0.0", init=3))
    assert ctl(env, "install", str(path)) == FAULT
    err = capsys.readouterr().err
    assert "export 'init' returned status 3" in err and "bad.wasm was taken out" in err
    status, body = post(env, plugin("bad", "1.0.0", init=3), "bad.wasm")
    assert status == 502 and body["error"]["code"] == "status_nonzero"
    failed = audit(daemon, "plugin.failed", "bad")
    assert [e["reason"] for e in failed] == ["status_nonzero", "status_nonzero"]
    assert files(env) == [] and "bad" not in env.state()["active"]
    assert daemon.parts.plugins.get("bad") is None  # nothing left, nothing to restart
    assert daemon.parts.reconciler.next_restart() is None
    installs = [e for e in env.audit_events() if e["event"] == "control.action"]
    assert [e["reason"] for e in installs] == ["status_nonzero", "status_nonzero"]


def test_an_upgrade_that_is_rolled_back_exits_8_and_the_old_version_serves(
    daemon: InProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = daemon.env
    assert post(env, plugin("echo", "1.0.0"), "echo.wasm")[0] == 201
    before = env.state()
    path = write(tmp_path, "echo.wasm", plugin("echo", "2.0.0", init=3))  # same file name
    assert ctl(env, "install", str(path)) == FAULT
    assert "echo 2.0.0 rolled_back" in capsys.readouterr().err
    [rolled] = audit(daemon, "plugin.rolled_back", "echo")
    assert rolled["reason"] == "status_nonzero" and rolled["actor"] == "uid=0(root)"
    assert daemon.invoke("echo") == b"echo@1.0.0:x"
    assert (env.plugins / "echo.wasm").read_bytes() == plugin("echo", "1.0.0")  # put back
    after = env.state()
    [refused] = after.pop("refused")["echo"]
    assert refused["kind"] == "rolled_back" and refused["sha256"] == rolled["sha256"]
    before.pop("refused")
    assert after == before
    [cand] = daemon.view("echo").candidates
    assert (cand.version, cand.status.value) == ("2.0.0", "rolled_back")


@pytest.mark.parametrize(
    ("bad", "filename", "status", "code", "text", "swapped"),
    [
        # a downgrade beside the running file: refused without a swap, audited all the same
        (lambda: plugin("echo", "0.9.0"), "new.wasm", 409, "downgrade", "is a downgrade", False),
        # a downgrade in place of the running file: its swap refuses it (the floor)
        (lambda: plugin("echo", "0.9.0"), "echo.wasm", 409, "downgrade", "is a downgrade", True),
        (lambda: no_unload("echo", "2.0.0"), "new.wasm", 422, "load_failed",
         "missing export 'unload'", True),
    ],
)  # fmt: skip
def test_a_rejected_artifact_exits_3_with_the_audit_code_and_leaves_no_file(
    daemon: InProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    bad: Any, filename: str, status: int, code: str, text: str, swapped: bool,
) -> None:  # fmt: skip
    env = daemon.env
    assert post(env, plugin("echo", "1.0.0"), "echo.wasm")[0] == 201
    before = env.state()
    assert ctl(env, "install", str(write(tmp_path, filename, bad()))) == REJECTED
    assert text in capsys.readouterr().err
    answer, body = post(env, bad(), filename)
    assert (answer, body["error"]["code"]) == (status, code)
    rejected = audit(daemon, "plugin.rejected", "echo")
    assert [e["reason"] for e in rejected] == [code, code]
    assert all(e["actor"] == "uid=0(root)" for e in rejected)
    assert all(e["message"].startswith(f"{filename}: ") for e in rejected)  # names the file
    assert files(env) == ["echo.wasm"]
    assert (env.plugins / "echo.wasm").read_bytes() == plugin("echo", "1.0.0")
    assert daemon.invoke("echo") == b"echo@1.0.0:x"
    after = env.state()
    refused = after.pop("refused").get("echo", [])
    assert [r["reason"] for r in refused] == ([code] if swapped else [])
    before.pop("refused")
    assert after == before
    assert daemon.parts.stats.rejected[code] == 2


def test_an_unsigned_upload_is_a_counted_rejection_and_writes_nothing(
    daemon: InProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = daemon.env
    path = write(tmp_path, "echo.wasm", plugin("echo", "1.0.0", signed=False))
    assert ctl(env, "install", str(path)) == REJECTED
    assert "not signed" in capsys.readouterr().err
    assert daemon.parts.audit_log.verify().ok
    [rejected] = [e for e in env.audit_events() if e["event"] == "plugin.rejected"]
    assert rejected["reason"] == "unsigned" and rejected["actor"] == "uid=0(root)"
    # named like a dropped file's rejection: the file, and the plugin its unverified manifest claims
    assert rejected["details"] == {"file": "echo.wasm", "upload": True, "manifest": "unverified"}
    assert rejected["message"] == "echo.wasm: module is not signed"
    assert (rejected["plugin"], rejected["version"]) == ("echo", "1.0.0")
    assert 'forgeone_artifacts_rejected_total{reason="unsigned"} 1' in metrics(daemon)
    assert files(env) == []
    # the state file holds the audit log's anchor only: nothing active, nothing refused
    state = json.loads((env.root / "state/state.json").read_text())
    assert state["active"] == {} and state["refused"] == {} and "audit_anchor" in state


def test_a_detached_signature_installs_through_the_cli_and_a_header(
    daemon: InProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = daemon.env
    module, payload = sig.sign_module(package_plugin(_echo_wat("1.0.0"), _m("1.0.0")), KEY)
    path, sig_path = write(tmp_path, "echo.wasm", module), write(tmp_path, "e.sig", payload)
    assert ctl(env, "install", str(path)) == REJECTED  # without it: not signed
    capsys.readouterr()
    assert ctl(env, "install", str(path), "--sig", str(sig_path)) == 0
    assert "installed echo 1.0.0 (running)" in capsys.readouterr().out
    assert files(env) == ["echo.wasm", "echo.wasm.sig"]
    assert (env.plugins / "echo.wasm.sig").read_bytes() == payload
    assert daemon.invoke("echo") == b"echo@1.0.0:x"
    module2, payload2 = sig.sign_module(package_plugin(_echo_wat("2.0.0"), _m("2.0.0")), KEY)
    header = {"X-Forgeone-Signature": base64.b64encode(payload2).decode()}
    status, body = post(env, module2, "echo.wasm", header)
    assert status == 201 and body["installed"]["version"] == "2.0.0"
    assert (env.plugins / "echo.wasm.sig").read_bytes() == payload2
    bad, body = post(env, module2, "echo.wasm", {"X-Forgeone-Signature": "not base64!"})
    assert (bad, body["error"]["code"]) == (400, "bad_request")
    assert env.state()["active"]["echo"]["version"] == "2.0.0"


def _echo_wat(version: str) -> str:
    return plugin_wat(f"echo@{version}")


def _m(version: str) -> dict[str, Any]:
    return manifest("echo", version, capabilities={"log": True})


def test_no_wait_answers_202_and_the_outcome_follows(
    daemon: InProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = daemon.env
    path = write(tmp_path, "echo.wasm", plugin("echo", "1.0.0"))
    assert ctl(env, "install", str(path), "--no-wait") == 0
    assert "handed to the daemon" in capsys.readouterr().out
    daemon.events.wait("plugin.installed", "echo")
    status, body = post(env, plugin("echo", "1.0.1"), "echo.wasm", wait="0")
    assert status == 202 and body["candidate"]["version"] == "1.0.1"
    daemon.events.wait("plugin.upgraded", "echo", version="1.0.1")
    daemon.sync()
    assert daemon.invoke("echo") == b"echo@1.0.1:x"


def test_restarts_are_counted_as_restarted_not_upgraded(
    daemon: InProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    env = daemon.env
    assert post(env, plugin("echo", "1.0.0"), "echo.wasm")[0] == 201
    assert post(env, plugin("echo", "1.1.0"), "echo.wasm")[0] == 201
    assert ctl(env, "restart", "echo") == 0
    lines = metrics(daemon)
    assert 'forgeone_swaps_total{plugin="echo",outcome="restarted"} 1' in lines
    assert 'forgeone_swaps_total{plugin="echo",outcome="upgraded"} 1' in lines
    assert 'forgeone_swaps_total{plugin="echo",outcome="installed"} 1' in lines
    assert daemon.invoke("echo") == b"echo@1.1.0:x"
    [restarted] = audit(daemon, "plugin.restarted", "echo")
    assert (restarted["version"], restarted["reason"]) == ("1.1.0", "operator")


def test_the_next_versions_signature_first_unadmits_nothing(daemon: InProcess) -> None:
    """An installer writing a detached signature before its module (as ``install --sig`` does,
    and an operator may) leaves, for a moment, the running version's module beside a
    signature of other bytes: no rejection, nothing stops, then the upgrade goes through."""
    env = daemon.env
    v1, sig1 = sig.sign_module(package_plugin(_echo_wat("1.0.0"), _m("1.0.0")), KEY)
    v2, sig2 = sig.sign_module(package_plugin(_echo_wat("2.0.0"), _m("2.0.0")), KEY)
    drop(env.plugins, "echo.wasm.sig", sig1)
    drop(env.plugins, "echo.wasm", v1)
    daemon.sync()
    assert daemon.invoke("echo") == b"echo@1.0.0:x"
    drop(env.plugins, "echo.wasm.sig", sig2)
    daemon.sync()  # the signature change is judged before the module arrives
    assert audit(daemon, "plugin.rejected", "echo") == []
    assert daemon.invoke("echo") == b"echo@1.0.0:x"
    drop(env.plugins, "echo.wasm", v2)
    daemon.events.wait("plugin.upgraded", "echo")
    assert daemon.invoke("echo") == b"echo@2.0.0:x"
    assert audit(daemon, "plugin.rejected", "echo") == []
    assert not any(daemon.parts.stats.rejected.values())
