"""The control API and forgeonectl against a real forgeoned process with real signed plugins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_kit import Daemon, Env, plugin

from forgeoned.cli import main
from forgeoned.errors import ArtifactError, ConflictError, NotFoundError


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(Env(tmp_path))
    try:
        d.ready()
        yield d
    finally:
        d.stop()


def ctl(d: Daemon, *args: str) -> int:
    return main(["--socket", d.env.socket, *args])


def test_install_invoke_pause_resume_through_the_api(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = tmp_path / "hello.wasm"
    artifact.write_bytes(plugin("hello", "1.0.0"))
    assert ctl(daemon, "install", str(artifact)) == 0
    assert "installed hello 1.0.0" in capsys.readouterr().out
    assert (daemon.env.plugins / "hello.wasm").read_bytes() == artifact.read_bytes()
    daemon.wait_until(lambda s: s.get("hello", {}).get("state") == "running", what="hello up")

    assert ctl(daemon, "invoke", "hello", "--input", "abc") == 0
    assert capsys.readouterr().out == "hello@1.0.0:abc"

    assert ctl(daemon, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    (entry,) = status["plugins"]
    assert {"name", "version", "state", "sha256"} <= set(entry)  # DESIGN §4, fields added
    assert (entry["name"], entry["version"], entry["state"]) == ("hello", "1.0.0", "running")
    assert (entry["candidates"], entry["quarantine"], entry["last_error"]) == ([], None, None)

    assert ctl(daemon, "pause", "hello") == 0
    daemon.wait_until(lambda s: s["hello"]["state"] == "paused", what="paused")
    assert ctl(daemon, "resume", "hello") == 0
    daemon.wait_until(lambda s: s["hello"]["state"] == "running", what="resumed")
    assert daemon.invoke("hello", b"z") == b"hello@1.0.0:z"

    assert ctl(daemon, "reload") == 0
    assert ctl(daemon, "audit", "verify") == 0
    capsys.readouterr()
    assert ctl(daemon, "audit", "export", "--format", "json") == 0
    events = json.loads(capsys.readouterr().out)
    actions = [e for e in events if e["event"] == "control.action"]
    assert [e["details"]["action"] for e in actions] == ["install", "pause", "resume", "reload"]
    assert all(e["actor"] == "uid=0(root)" for e in actions)


def test_unsigned_or_tampered_install_writes_nothing(daemon: Daemon) -> None:
    good = plugin("hello", "1.0.0")
    tampered = bytearray(good)
    tampered[-1] ^= 0x01
    before = sorted(p.name for p in daemon.env.plugins.iterdir())
    with daemon.client() as client:
        for data in (plugin("hello", "1.0.0", signed=False), bytes(tampered)):
            with pytest.raises(ArtifactError):
                client.install(data, "hello.wasm")
        with pytest.raises(NotFoundError):
            client.show("hello")
    assert sorted(p.name for p in daemon.env.plugins.iterdir()) == before
    rejected = [e for e in daemon.env.audit_events() if e["event"] == "control.action"]
    assert len(rejected) == 2 and all(e["reason"] != "ok" for e in rejected)
    # each refusal is a plugin.rejected like a dropped file's, with the same code
    refused = [e for e in daemon.env.audit_events() if e["event"] == "plugin.rejected"]
    assert [e["reason"] for e in refused] == [e["reason"] for e in rejected]
    assert all(e["actor"] == "uid=0(root)" and e["details"]["upload"] for e in refused)


def test_unknown_plugin_and_bad_state_change(daemon: Daemon) -> None:
    with daemon.client() as client:
        with pytest.raises(NotFoundError):
            client.action("ghost", "pause")
        client.install(plugin("hello", "1.0.0"), "hello.wasm")
    daemon.wait_until(lambda s: s.get("hello", {}).get("state") == "running", what="hello up")
    with daemon.client() as client:
        client.action("hello", "pause")
        with pytest.raises(ConflictError):
            client.action("hello", "pause")  # already paused
    assert ctl(daemon, "show", "ghost") == 6
