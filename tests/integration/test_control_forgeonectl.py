"""forgeonectl against a real control server (fake backend): output and exit codes."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_harness import SIGNED_MAGIC, FakeBackend, ListSink, config, running

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.control.server import ControlServer
from forgeoned.cli import main
from forgeoned.errors import ApplicationError


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ControlServer, FakeBackend, ListSink]]:
    with running(config(tmp_path / "c.sock")) as triple:
        yield triple


def run(server: ControlServer, *args: str) -> int:
    return main(["--socket", server.socket_path, *args])


def test_status_table_and_json(
    served: tuple[ControlServer, FakeBackend, ListSink], capsys: pytest.CaptureFixture[str]
) -> None:
    server, _, _ = served
    assert run(server, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "STATE", "SHA256"]
    assert lines[2].split() == ["hello", "1.0.0", "running", "abababababababab"]
    assert run(server, "status", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    design = ("name", "version", "state", "sha256")  # DESIGN §4's keys, kept; fields added
    assert [{k: p[k] for k in design} for p in doc["plugins"]] == [
        {"name": "billing-a", "version": "1.0.0", "state": "running", "sha256": "ab" * 32},
        {"name": "hello", "version": "1.0.0", "state": "running", "sha256": "ab" * 32},
    ]
    assert all(p["candidates"] == [] and p["quarantine"] is None for p in doc["plugins"])


def test_show_and_actions(
    served: tuple[ControlServer, FakeBackend, ListSink], capsys: pytest.CaptureFixture[str]
) -> None:
    server, backend, sink = served
    assert run(server, "show", "hello") == 0
    out = capsys.readouterr().out
    assert "state:          running" in out and "signers:        dev" in out
    assert "fuel_consumed:  0" in out  # every value one column, after at least one space
    for verb in ("pause", "resume", "restart", "reset"):
        assert run(server, verb, "hello") == 0
    assert run(server, "allow-downgrade", "hello", "0.9.0") == 0
    assert run(server, "remove", "billing-a") == 0
    assert run(server, "reload") == 0
    assert [c[0] for c in backend.calls] == [
        "pause",
        "resume",
        "restart",
        "reset",
        "allow_downgrade",
        "remove",
        "reload",
    ]
    assert "billing-a" not in backend.plugins
    assert len(sink.events) == 7 and all(e.actor == "uid=0(root)" for e in sink.events)


def test_invoke_inputs_and_faults(
    served: tuple[ControlServer, FakeBackend, ListSink],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _, _ = served
    assert run(server, "invoke", "hello", "--input", "text") == 0
    assert capsys.readouterr().out == "TEXT"
    data = tmp_path / "in.bin"
    data.write_bytes(b"file input")
    assert run(server, "invoke", "hello", "--input-file", str(data)) == 0
    assert capsys.readouterr().out == "FILE INPUT"
    assert run(server, "invoke", "hello", "--input", "trap") == 8
    assert capsys.readouterr().err == "forgeonectl: plugin ran out of fuel\n"
    assert run(server, "invoke", "ghost") == 6
    assert run(server, "pause", "hello") == 0
    assert run(server, "pause", "hello") == 7  # already paused: conflict
    assert "is not running" in capsys.readouterr().err


def test_an_application_error_prints_the_output_and_exits_11(
    served: tuple[ControlServer, FakeBackend, ListSink],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    server, _, _ = served
    assert run(server, "invoke", "hello", "--input", "refuse:bad input") == 11
    out, err = capsysbinary.readouterr()
    assert out == b"bad input"
    assert err == b"forgeonectl: plugin hello: 'handle' returned status 3\n"
    assert run(server, "invoke", "hello", "--input", "refuse-bin") == 11
    assert capsysbinary.readouterr().out == b"\xff\x00binary"  # bytes as they were


def test_the_api_answers_an_application_error_with_status_and_output(
    served: tuple[ControlServer, FakeBackend, ListSink],
) -> None:
    server, _, _ = served
    with ControlClient(server.socket_path) as client:
        raw = client._conn
        for data, output, encoding in (
            (b"refuse:bad input", "bad input", "utf-8"),
            (b"refuse-bin", base64.b64encode(b"\xff\x00binary").decode(), "base64"),
        ):
            raw.request("POST", "/v1/plugins/hello/invoke", body=data)
            resp = raw.getresponse()
            assert resp.status == 422
            error = json.loads(resp.read())["error"]
            assert error == {
                "code": "application_error",
                "message": "plugin hello: 'handle' returned status 3",
                "export": "handle",
                "status": 3,
                "output": output,
                "output_encoding": encoding,
            }
        with pytest.raises(ApplicationError) as caught:
            client.invoke("hello", b"refuse-bin")
    assert (caught.value.status, caught.value.output) == (3, b"\xff\x00binary")


def test_invoking_a_paused_plugin_fails_at_once_unless_told_to_wait(
    served: tuple[ControlServer, FakeBackend, ListSink],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, backend, _ = served
    backend.plugins["hello"].state = "paused"
    assert run(server, "invoke", "hello", "--input", "x") == 7
    assert capsys.readouterr().err == "forgeonectl: plugin 'hello' is paused\n"
    assert run(server, "invoke", "hello", "--input", "x", "--wait", "2.5") == 0
    assert capsys.readouterr().out == "X"
    assert ("invoke_wait", "hello", "2.5") in backend.calls
    with pytest.raises(SystemExit) as usage:
        main(["invoke", "hello", "--wait", "soon"])
    assert usage.value.code == 2  # not a number of seconds


@pytest.mark.parametrize("state", ["quarantined", "failed", "stopped"])
def test_invoking_a_plugin_that_cannot_serve_is_exit_12(
    served: tuple[ControlServer, FakeBackend, ListSink],
    capsys: pytest.CaptureFixture[str],
    state: str,
) -> None:
    server, backend, _ = served
    backend.plugins["hello"].state = state
    assert run(server, "invoke", "hello", "--input", "x") == 12
    assert capsys.readouterr().err == f"forgeonectl: plugin 'hello' is {state}\n"


def test_install_exit_codes(
    served: tuple[ControlServer, FakeBackend, ListSink],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, backend, _ = served
    good, bad = tmp_path / "new.wasm", tmp_path / "bad.wasm"
    good.write_bytes(SIGNED_MAGIC + b"new")
    bad.write_bytes(b"\0asm\1\0\0\0")
    assert run(server, "install", str(bad)) == 3
    assert capsys.readouterr().err == "forgeonectl: artifact is not signed\n"
    assert backend.written == {}
    assert run(server, "install", str(good)) == 0
    assert "installed new 1.0.0 (running)" in capsys.readouterr().out
    assert run(server, "install", str(tmp_path / "missing.wasm")) == 1


def test_denied_is_exit_5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running(config(tmp_path / "c.sock", root_is_admin=False)) as (server, backend, _):
        assert run(server, "pause", "hello") == 5
        err = capsys.readouterr().err
        assert err.startswith("forgeonectl: uid=0(root) may not pause on plugin 'hello'")
        assert err.rstrip().endswith("(rule default-deny)")
        assert backend.calls == []
        assert run(server, "whoami") == 0
        assert json.loads(capsys.readouterr().out)["actions"] == []


def test_audit_export_and_verify(
    served: tuple[ControlServer, FakeBackend, ListSink], capsys: pytest.CaptureFixture[str]
) -> None:
    server, backend, _ = served
    backend.audit_log = [
        {
            "seq": 1,
            "ts": "2026-01-01T00:00:00Z",
            "event": "daemon.started",
            "hash": "h1",
            "prev_hash": "h0",
        },
        {
            "seq": 2,
            "ts": "2026-01-02T00:00:00Z",
            "event": "plugin.paused",
            "plugin": "=cmd",
            "hash": "h2",
            "prev_hash": "h1",
        },
    ]
    assert run(server, "audit", "export", "--since", "2026-01-01T12:00:00") == 0
    assert [e["seq"] for e in json.loads(capsys.readouterr().out)] == [2]
    assert run(server, "audit", "export", "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["event"] for r in rows] == ["daemon.started", "plugin.paused"]
    assert rows[1]["plugin"] == "'=cmd"  # spreadsheet formula defused
    assert run(server, "audit", "verify") == 0
    assert capsys.readouterr().out == "audit chain intact (2 entries)\n"
    backend.broken_at = 2
    assert run(server, "audit", "verify") == 9
    assert capsys.readouterr().err == "forgeonectl: audit chain broken at seq 2: hash\n"
    assert run(server, "audit", "export", "--since", "whenever") == 1


def test_compliance_report(
    served: tuple[ControlServer, FakeBackend, ListSink], capsys: pytest.CaptureFixture[str]
) -> None:
    server, backend, _ = served
    backend.audit_log = [
        {
            "seq": 1,
            "ts": "2026-01-01T00:00:00Z",
            "event": "control.denied",
            "actor": "uid=65534(nobody)",
            "reason": "default-deny",
            "hash": "h1",
        },
    ]
    assert run(server, "compliance", "report", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["denials"]) == 1 and report["chain"]["ok"] is True
    assert [c["plugin"] for c in report["current"]] == ["billing-a", "hello"]
    assert run(server, "compliance", "report", "--since", "2026-02-01T00:00:00Z") == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("#")


def test_a_reader_that_goes_away_is_not_an_error(
    served: tuple[ControlServer, FakeBackend, ListSink],
) -> None:
    server, backend, _ = served
    backend.audit_log = [
        {"seq": i, "ts": "2026-01-01T00:00:00Z", "event": "daemon.started", "hash": "h" * 64}
        for i in range(20_000)
    ]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from forgeoned.cli import main; raise SystemExit(main())",
            "--socket",
            server.socket_path,
            "audit",
            "export",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b'[\n{"event"'
    proc.stdout.close()  # like `| head`
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert err == b""
