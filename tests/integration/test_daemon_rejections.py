"""Rejected files are traceable (issue 17, item 3): each ``plugin.rejected`` names the file and,
whenever a manifest can be read, the plugin (marked unverified when nobody signed it), and
``forgeonectl status --all`` lists the files refused now with their reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_kit import Env, drop, in_process, plugin

from forgeoned.cli import main


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    drop(e.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    return e


def test_each_rejection_names_its_file_and_the_plugin_it_claims_to_be(env: Env) -> None:
    with in_process(env) as d:
        drop(env.plugins, "evil.wasm", plugin("evil", "6.6.6", signed=False))
        drop(env.plugins, "junk.wasm", b"\0asm\x01\0\0\0 not really")
        [unsigned] = d.events.wait("plugin.rejected", reason="unsigned")
        [junk] = d.events.wait("plugin.rejected", reason="malformed")
        assert (unsigned.plugin, unsigned.version) == ("evil", "6.6.6")
        assert unsigned.message.startswith("evil.wasm: ")
        assert unsigned.details == {"file": "evil.wasm", "manifest": "unverified"}
        assert junk.plugin is None and junk.message.startswith("junk.wasm: ")
        assert junk.details == {"file": "junk.wasm"}
        rejected = {r["file"]: r for r in d.daemon.backend.rejected_files()}
        assert set(rejected) == {"evil.wasm", "junk.wasm"}
        assert rejected["evil.wasm"]["reason"] == "unsigned"
        assert rejected["evil.wasm"]["manifest"] == "unverified"
        assert d.parts.stats.rejected["unsigned"] == 1
        # A downgrade is refused after its (signed) manifest was read: named, verified.
        drop(env.plugins, "hello.wasm", plugin("hello", "0.9.0"))
        [downgrade] = d.events.wait("plugin.rejected", reason="downgrade")
        assert downgrade.plugin == "hello" and "manifest" not in downgrade.details
        assert downgrade.details["file"] == "hello.wasm"
        assert downgrade.message.startswith("hello.wasm: ")


def test_status_all_lists_the_refused_files_with_their_reasons(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    with in_process(env) as d:
        drop(env.plugins, "evil.wasm", plugin("evil", "6.6.6", signed=False))
        d.events.wait("plugin.rejected", reason="unsigned")
        assert main(["--socket", env.socket, "status", "--all"]) == 0
        out = capsys.readouterr().out
        assert main(["--socket", env.socket, "status"]) == 0
        plain = capsys.readouterr().out
    assert "rejected files in plugins.d: 1" in out
    row = next(line for line in out.splitlines() if line.startswith("evil.wasm"))
    assert row.split()[:3] == ["evil.wasm", "evil", "6.6.6?"]
    assert "unsigned" in row and "module is not signed" in row
    assert "evil" not in plain  # plain status: the plugin views only
