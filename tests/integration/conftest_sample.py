"""Build the Rust sample plugin once per test session (importable by any test module).

Usage in a test module (calling the cached builder avoids ruff's F811 on fixture imports)::

    from conftest_sample import build_sample

    def test_something() -> None:
        v1 = build_sample()            # output of handle(b"x"): b"sample 1.0.0 #1 | x"
        v2 = build_sample("2.0.0")     # b"sample 2.0.0 #1 | x"
        bad = build_sample("1.0.1", fail_init=True)   # init returns 1

``sample_wasm`` is the module the Makefile builds (``target/.../forgeone_sample_plugin.wasm``);
``build_sample(version)`` builds other versions into their own target directories and caches
the bytes per session. Both skip the test with a clear reason when the Debian Rust toolchain
(``/usr/bin/cargo``, ``/usr/bin/rustc`` with the wasm32 std) is not installed. The sample's
command inputs (``!panic``, ``!spin``, ``!fail``, …) are listed in its ``src/lib.rs``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "examples" / "sample-plugin"
TARGET = "wasm32-unknown-unknown"
ARTIFACT = "forgeone_sample_plugin.wasm"
CARGO = "/usr/bin/cargo"
RUSTC = "/usr/bin/rustc"
WASM_STD = Path("/usr/lib/rustlib") / TARGET


def toolchain_missing() -> str | None:
    """Why the sample cannot be built here, or None when it can."""
    for tool in (CARGO, RUSTC):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install rustc cargo libstd-rust-dev-wasm32)"
    if not WASM_STD.exists():
        return f"wasm32 std missing at {WASM_STD} (apt-get install libstd-rust-dev-wasm32)"
    return None


@functools.cache
def build_sample(version: str = "1.0.0", fail_init: bool = False) -> bytes:
    """The sample plugin's wasm bytes for ``version`` (built at most once per session)."""
    reason = toolchain_missing()
    if reason is not None:
        pytest.skip(f"sample plugin not buildable: {reason}")
    env = dict(os.environ, RUSTC=RUSTC, CARGO_TERM_COLOR="never")
    target_dir = SAMPLE_DIR / "target"
    if version != "1.0.0" or fail_init:
        env["FORGEONE_SAMPLE_VERSION"] = version
        variant = version + ("-fail-init" if fail_init else "")
        target_dir = target_dir / "variants" / variant
    if fail_init:
        env["FORGEONE_SAMPLE_FAIL_INIT"] = "1"
    env["CARGO_TARGET_DIR"] = str(target_dir)
    command = [CARGO, "build", "--offline", "--release", "--quiet", "--target", TARGET]
    result = subprocess.run(
        command, cwd=SAMPLE_DIR, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the sample plugin failed:\n{result.stderr}")
    return (target_dir / TARGET / "release" / ARTIFACT).read_bytes()


@pytest.fixture(scope="session")
def sample_wasm() -> bytes:
    """The sample plugin, version 1.0.0, as raw (unsigned, unpackaged) wasm bytes."""
    return build_sample()
