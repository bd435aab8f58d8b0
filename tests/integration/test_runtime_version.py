"""The fast call path is built on wasmtime-py internals of one release: importing it checks
the installed wasmtime against the pin, and the daemon refuses to start on another one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from forgeoned.adapters.wasm.fastcall import (
    PINNED_WASMTIME,
    check_runtime_version,
    installed_wasmtime,
)
from forgeoned.errors import RuntimeVersionError

REPO = Path(__file__).resolve().parents[2]


def test_the_pin_is_the_one_pyproject_installs() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in deps if re.match(r"wasmtime\b", d)]
    assert pins == [f"wasmtime=={PINNED_WASMTIME}"]
    assert installed_wasmtime() == PINNED_WASMTIME  # else this module would not import


def test_exactly_the_pinned_version_passes() -> None:
    check_runtime_version("50.0.1", "50.0.1")


@pytest.mark.parametrize("installed", ["50.0.2", "51.0.0", "49.0.0", "50.0.1rc1", None])
def test_any_other_version_is_refused_with_what_to_install(installed: str | None) -> None:
    with pytest.raises(RuntimeVersionError, match=r"install wasmtime==50\.0\.1") as info:
        check_runtime_version(installed, "50.0.1")
    assert (installed or "(not installed)") in str(info.value)
    assert info.value.code == "runtime_version"


# Run in a fresh interpreter: the metadata lookup answers another version for wasmtime only,
# then the daemon's console entry point starts as systemd would start it.
OTHER_WASMTIME = """
import importlib.metadata, sys
real = importlib.metadata.version
importlib.metadata.version = lambda name: "51.0.0" if name == "wasmtime" else real(name)
from forgeoned.daemon import main
sys.exit(main(["--config", sys.argv[1]]))
"""


def test_the_daemon_refuses_to_start_on_another_wasmtime(tmp_path: Path) -> None:
    config = tmp_path / "never-read.toml"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", OTHER_WASMTIME, str(config)],
        check=False, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 69, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("forgeoned: wasmtime 51.0.0 is installed")
    assert "install wasmtime==50.0.1" in lines[0]
