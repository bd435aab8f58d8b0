"""docs/operations.md, "Delivering plugins to a fleet": every command block marked
``<!-- fleet-test: STEP -->`` is run as written, in order, against a real registry and a real
daemon. Substituted: ``REGISTRY`` (the test registry's 127.0.0.1:PORT),
``/etc/forgeoned/trusted.d`` (the test's trust dir), ``--plain-http`` added to ``push`` (the
test registry has no TLS) and ``--socket`` to commands that talk to the daemon."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from daemon_kit import KEY, Env, in_process, plugin
from registry_kit import REGISTRY, registry
from test_daemon_require_staging import STAGER, _attest

from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli import main as forgeonectl

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")
DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
_BLOCK = re.compile(
    r"<!-- fleet-test: (?P<step>[a-z-]+) -->\n```(?P<lang>sh|toml)\n(?P<body>.*?)^```$", re.M | re.S
)


def _blocks() -> dict[str, str]:
    text = DOC.read_text()
    section = text[text.index("## Delivering plugins to a fleet") : text.index("## Remove")]
    return {m["step"]: m["body"] for m in _BLOCK.finditer(section)}


def test_the_section_marks_every_step() -> None:
    assert list(_blocks()) == ["push", "follow-config", "follow", "rollback", "staged", "revoke"]


class Runner:
    def __init__(self, host: str, env: Env) -> None:
        self.host, self.env = host, env
        self.codes: list[tuple[str, int]] = []

    def run(self, block: str) -> list[int]:
        codes = []
        trust = str(self.env.root / "trusted.d")
        for raw in block.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = shlex.split(
                line.replace("REGISTRY", self.host).replace("/etc/forgeoned/trusted.d", trust)
            )
            if words[0] == "rm":
                Path(words[1]).unlink()
                codes.append(0)
                continue
            assert words[0] == "forgeonectl", line
            args = words[1:]
            if args[0] == "push":
                args.append("--plain-http")
            else:
                args = ["--socket", self.env.socket, *args]
            code = forgeonectl(args)
            codes.append(code)
            self.codes.append((line, code))
        return codes


def test_every_command_of_the_section_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = _blocks()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hello-1.0.0.wasm").write_bytes(plugin("hello", "1.0.0"))
    (tmp_path / "hello-2.0.0.wasm").write_bytes(plugin("hello", "2.0.0"))
    with registry(tmp_path / "registry") as reg:
        (tmp_path / "host").mkdir()
        env = Env(tmp_path / "host")
        (env.root / "trusted.d" / "test.pub").rename(env.root / "trusted.d" / "ops.pub")
        assert (env.root / "trusted.d" / "ops.pub").read_bytes() == public_key_bytes(KEY.public_key)
        run = Runner(reg.host, env)
        assert run.run(blocks["push"]) == [0, 0]
        config = blocks["follow-config"].replace("REGISTRY", reg.host)
        config = config.replace('credentials = "registry"', "plain_http = true")
        env.write_config(config)
        with in_process(env) as d:
            d.events.wait("plugin.installed", "hello")
            assert run.run(blocks["follow"]) == [0, 0, 0]
            out = capsys.readouterr().out
            assert "hello\toci://" in out and "hello 1.0.0" in out
            # a new version arrives under the tag (not a doc step: what rollback undoes)
            trust = str(env.root / "trusted.d")
            new = reg.ref("plugins/hello", "stable")
            assert forgeonectl(["push", "hello-2.0.0.wasm", new, "--trust", trust,
                                "--plain-http"]) == 0  # fmt: skip
            assert forgeonectl(["--socket", env.socket, "pull", "hello"]) == 0
            d.events.wait("plugin.upgraded", "hello", version="2.0.0")
            assert run.run(blocks["rollback"]) == [0, 0, 0, 0]
            d.events.wait("plugin.upgraded", "hello", version="1.0.0")
            assert d.view("hello").version == "1.0.0" and d.invoke("hello") == b"hello@1.0.0:x"
            capsys.readouterr()
            assert run.run(blocks["revoke"]) == [0, 0, 1]  # pull: no longer trusted
            assert "not signed by any trusted key" in capsys.readouterr().err
            d.events.wait("plugin.removed", "hello")
            d.events.wait("source.failed", reason="artifact_untrusted")


def test_the_staged_push_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "Require staging": a production daemon with ``require_staging`` follows the source;
    the block pushes 2.0.0 with the attestation beside it and pulls: it swaps in."""
    blocks = _blocks()
    monkeypatch.chdir(tmp_path)
    v1, v2 = plugin("hello", "1.0.0"), plugin("hello", "2.0.0")
    (tmp_path / "hello-1.0.0.wasm").write_bytes(v1)
    (tmp_path / "hello-1.0.0.wasm.intoto.json").write_bytes(_attest(v1, "hello", "1.0.0"))
    (tmp_path / "hello-2.0.0.wasm").write_bytes(v2)
    (tmp_path / "hello-2.0.0.wasm.intoto.json").write_bytes(_attest(v2, "hello", "2.0.0"))
    with registry(tmp_path / "registry") as reg:
        (tmp_path / "host").mkdir()
        env = Env(tmp_path / "host")
        (env.root / "trusted.d" / "test.pub").rename(env.root / "trusted.d" / "ops.pub")
        stager = public_key_bytes(STAGER.public_key)
        (env.root / "trusted.d" / "stager.pub").write_bytes(stager)
        run = Runner(reg.host, env)
        first = reg.ref("plugins/hello", "stable")
        trust = str(env.root / "trusted.d")
        assert forgeonectl(["push", "hello-1.0.0.wasm", first, "--trust", trust,
                            "--plain-http"]) == 0  # fmt: skip
        config = blocks["follow-config"].replace("REGISTRY", reg.host)
        config = config.replace('credentials = "registry"', "plain_http = true")
        env.write_config('[staging]\nrequire_staging = true\nattesters = ["stager"]\n' + config)
        with in_process(env) as d:
            d.events.wait("plugin.installed", "hello")
            assert run.run(blocks["staged"]) == [0, 0]
            d.events.wait("plugin.upgraded", "hello", version="2.0.0")
            assert d.invoke("hello") == b"hello@2.0.0:x"
            held = (env.plugins / "oci-hello.wasm.intoto.json").read_bytes()
            assert held == (tmp_path / "hello-2.0.0.wasm.intoto.json").read_bytes()
