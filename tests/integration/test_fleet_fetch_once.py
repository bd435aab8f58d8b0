"""``forgeoned-fetch --once``: the Kubernetes init container's step, with a real registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from daemon_kit import REPO, Env, in_process, plugin
from fleet_kit import REPO as IMAGE_REPO
from fleet_kit import push, source_toml
from registry_kit import REGISTRY, registry
from test_daemon_require_staging import STAGER, _attest

from forgeoned.adapters.crypto.keys import public_key_bytes

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")


def _fetch(env: Env) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forgeoned.daemon.fetch", "--config", str(env.config), "--once"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_fetch_once_fills_plugins_d_before_the_daemon_starts(tmp_path: Path) -> None:
    with registry(tmp_path / "registry") as reg:
        env = Env(tmp_path)
        push(reg, tmp_path, plugin("hello", "1.0.0"), "stable", env.root / "trusted.d")
        env.write_config(source_toml("hello", reg.ref(IMAGE_REPO, "stable")))
        run = _fetch(env)
        assert run.returncode == 0, run.stderr
        assert "hello: synced hello 1.0.0 sha256:" in run.stderr
        assert (env.plugins / "oci-hello.wasm").is_file()
        assert "unchanged" in _fetch(env).stderr  # idempotent
        reg.stop()
        down = _fetch(env)  # the registry is gone: the init container fails, kubelet retries
        assert down.returncode == 1 and "registry_unreachable" in down.stderr
        with in_process(env) as d:  # the daemon starts with the plugin already there
            assert d.view("hello").state == "running"
            assert d.invoke("hello") == b"hello@1.0.0:x"


def test_fetch_once_with_require_staging_installs_the_attestation_or_refuses(
    tmp_path: Path,
) -> None:
    """The init container checks what the daemon checks: without an attestation the
    artifact is refused with the staging reason; with one, both files land and the
    require_staging daemon starts with the plugin running."""
    data = plugin("hello", "1.0.0")
    with registry(tmp_path / "registry") as reg:
        env = Env(tmp_path)
        (env.root / "trusted.d/stager.pub").write_bytes(public_key_bytes(STAGER.public_key))
        staging = '[staging]\nrequire_staging = true\nattesters = ["stager"]\n'
        env.write_config(staging + source_toml("hello", reg.ref(IMAGE_REPO, "stable")))
        push(reg, tmp_path, data, "stable", env.root / "trusted.d")
        run = _fetch(env)
        assert run.returncode == 1 and "hello: staging_unattested:" in run.stderr
        assert not list(env.plugins.iterdir())
        (tmp_path / "push-stable.wasm.intoto.json").write_bytes(_attest(data, "hello", "1.0.0"))
        push(reg, tmp_path, data, "stable", env.root / "trusted.d")
        run = _fetch(env)
        assert run.returncode == 0, run.stderr
        assert sorted(p.name for p in env.plugins.iterdir()) == [
            "oci-hello.wasm", "oci-hello.wasm.intoto.json",
        ]  # fmt: skip
        with in_process(env) as d:
            assert d.view("hello").state == "running"
