"""Push, then follow: a real registry, a real daemon, a tag that moves (issue 16)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from daemon_kit import Env, in_process, plugin
from fleet_kit import REPO, fleet, push, source_toml
from registry_kit import REGISTRY, registry

from forgeoned.adapters.metrics.model import MetricsModel
from forgeoned.adapters.metrics.server import render_text
from forgeoned.cli import main as forgeonectl

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")


def test_push_then_follow_brings_the_plugin_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fleet(tmp_path) as f:
        assert f.d.invoke("hello") == b"hello@1.0.0:x"
        synced = f.d.events.wait("source.synced", "hello")[0]
        assert synced.version == "1.0.0" and synced.details["source"] == "hello"
        assert (f.env.plugins / "oci-hello.wasm").is_file()
        capsys.readouterr()
        assert f.ctl("sources", "--json") == 0
        row = json.loads(capsys.readouterr().out)["sources"][0]
        assert row["name"] == "hello" and row["outcome"] == "synced" and row["version"] == "1.0.0"
        assert f.ctl("pull", "hello") == 0  # nothing new: unchanged, not audited again
        assert "unchanged" in capsys.readouterr().out
        assert len(f.d.events.wait("source.synced", "hello")) == 1
        text = render_text(MetricsModel(f.d.daemon.backend).families()).decode()
        assert 'forgeone_source_syncs_total{source="hello",outcome="unchanged"} 1' in text
        assert 'forgeone_source_up{source="hello"} 1' in text


def test_a_new_version_under_the_tag_swaps_in_with_no_failed_call_under_load(
    tmp_path: Path,
) -> None:
    with fleet(tmp_path) as f:
        stop = threading.Event()
        outputs: list[bytes] = []
        failures: list[BaseException] = []

        def load() -> None:
            while not stop.is_set():
                try:
                    outputs.append(f.d.invoke("hello"))
                except Exception as exc:  # every failed call is the finding
                    failures.append(exc)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            f.push(plugin("hello", "2.0.0"))
            assert f.ctl("pull", "hello") == 0
            f.d.events.wait("plugin.upgraded", "hello", version="2.0.0")
            seen = len(outputs)
            # wait for calls answered by the new version, then stop the load
            while b"hello@2.0.0:x" not in outputs[seen:]:
                f.d.invoke("hello")
                if failures:
                    break
        finally:
            stop.set()
            for w in workers:
                w.join(30)
        assert failures == []
        assert outputs.count(b"hello@1.0.0:x") > 0 and outputs.count(b"hello@2.0.0:x") > 0
        assert f.running() == "2.0.0"


def test_a_digest_pin_never_moves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with registry(tmp_path / "registry") as reg:
        (tmp_path / "host").mkdir()
        env = Env(tmp_path / "host")
        capsys.readouterr()
        push(reg, tmp_path, plugin("hello", "1.0.0"), "stable", env.root / "trusted.d")
        digest = capsys.readouterr().out.splitlines()[-1]
        assert digest.startswith("sha256:")
        env.write_config(source_toml("hello", f"oci://{reg.host}/{REPO}@{digest}"))
        with in_process(env) as d:
            d.events.wait("plugin.installed", "hello")
            push(reg, tmp_path, plugin("hello", "2.0.0"), "stable", env.root / "trusted.d")
            assert forgeonectl(["--socket", env.socket, "pull", "hello"]) == 0
            assert "unchanged" in capsys.readouterr().out  # the tag moved, the pin did not
            assert d.view("hello").version == "1.0.0"
            assert d.events.labels("hello").count("plugin.upgraded") == 0
