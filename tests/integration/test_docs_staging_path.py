"""Every command of the staging → production path in docs/plugin-authoring.md and
docs/operations.md (the blocks marked ``<!-- doc-test: staging-path STEP -->``) runs as
written, in order, against real in-process daemons: a staging one for ``staging``, a
production one requiring staging for ``production`` and ``review``; ``author`` needs none.
Only paths change (``/etc/forgeoned`` is the test's directory) and ``sudo`` is dropped."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from daemon_kit import Env, in_process, plugin
from doc_steps import OPERATIONS, PLUGIN_AUTHORING, doc_test_blocks

from forgeoned.cli import main
from forgeoned.cli.exitcodes import OK


def _commands(script: str) -> list[list[str]]:
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "sudo":
            words = words[1:]
        if words:
            assert words[0] == "forgeonectl", line
            out.append(words[1:])
    return out


def _path(arg: str, etc: Path, config: Path | None) -> str:
    if arg == "/etc/forgeoned/forgeoned.toml" and config is not None:
        return str(config)
    if arg == "/etc/forgeoned" or arg.startswith("/etc/forgeoned/"):
        return str(etc) + arg.removeprefix("/etc/forgeoned")
    return arg


def _run(
    capsys: pytest.CaptureFixture[str], argv: list[str], etc: Path, env: Env | None,
    config: Path | None = None,
) -> str:  # fmt: skip
    config = config or (env.config if env is not None else None)
    argv = [_path(a, etc, config) for a in argv]
    if env is not None:
        argv = ["--socket", env.socket, *argv]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == OK, (argv, out, err)
    return out


def test_the_documented_staging_path_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = doc_test_blocks("staging-path", PLUGIN_AUTHORING, OPERATIONS)
    assert [s.name for s in steps] == ["author", "staging", "production", "review"]
    by_step = {s.name: _commands(s.script) for s in steps}
    assert sum(len(c) for c in by_step.values()) >= 12
    work, etc = tmp_path / "work", tmp_path / "etc"
    for directory in (work, etc, tmp_path / "staging", tmp_path / "production"):
        directory.mkdir()
    monkeypatch.chdir(work)
    (work / "hello-1.2.0.wasm").write_bytes(plugin("hello", "1.2.0"))
    staging = Env(tmp_path / "staging", mode="staging")
    staging.write_config("[staging]\nmin_calls = 1")
    production = Env(tmp_path / "production")
    production.write_config(  # the attester key scoped to nothing it could sign, as advised
        '[staging]\nrequire_staging = true\nattesters = ["staging"]\n'
        '[trust.scopes]\nstaging = ["-"]'
    )

    # the author's checks run against the production config before any attestation exists:
    # check says "rejected (staging_unattested)" there, so point them at the staging config
    for argv in by_step["author"]:
        _run(capsys, argv, etc, None, staging.config)
    assert (work / "hello.tape.json").is_file()
    with in_process(staging) as d:
        for argv in by_step["staging"]:
            _run(capsys, argv, etc, None if argv[0] == "keys" else staging)
        assert d.invoke("hello") == b"hello@1.2.0:x"
    assert (work / "hello-1.2.0.wasm.intoto.json").is_file()
    shutil.copy(etc / "staging.pub", production.root / "trusted.d/staging.pub")
    with in_process(production) as d:
        outputs = [_run(capsys, argv, etc, production) for argv in by_step["production"]]
        assert outputs[0].startswith("accepted: hello 1.2.0")
        assert "## Staging evidence (1)" in outputs[-1] and "attestation (expires" in outputs[-1]
        assert d.invoke("hello") == b"hello@1.2.0:x"
        for argv in by_step["review"]:
            assert _run(capsys, argv, etc, production).startswith("reviewed hello 1.2.0")
        d.events.wait("plugin.reviewed", "hello")
