"""TLS settings of a source and of ``push``: verified against ``ca_file``; an unknown CA is
refused (registry_unreachable: the handshake fails) and nothing runs from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_kit import Env, in_process, plugin
from fleet_kit import REPO, source_toml
from registry_kit import REGISTRY, registry, self_signed

from forgeoned.cli import main as forgeonectl

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")


def test_a_registry_with_a_private_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = self_signed(tmp_path)
    with registry(tmp_path / "registry", tls=(cert, key)) as reg:
        (tmp_path / "host").mkdir()
        env = Env(tmp_path / "host")
        wasm = tmp_path / "hello.wasm"
        wasm.write_bytes(plugin("hello", "1.0.0"))
        ref = reg.ref(REPO, "stable")
        trust = str(env.root / "trusted.d")
        assert forgeonectl(["push", str(wasm), ref, "--trust", trust]) == 1  # unknown CA
        assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
        assert forgeonectl(["push", str(wasm), ref, "--trust", trust, "--ca-file", str(cert)]) == 0
        good = source_toml("hello", ref, plain_http=False, ca_file=str(cert))
        bad = source_toml("other", ref, plain_http=False)  # the system CAs only
        env.write_config(good + bad)
        with in_process(env) as d:
            d.events.wait("plugin.installed", "hello")
            failed = d.events.wait("source.failed", reason="registry_unreachable")[0]
            assert failed.details["source"] == "other" and "CERTIFICATE" in failed.message
            assert d.invoke("hello") == b"hello@1.0.0:x"
