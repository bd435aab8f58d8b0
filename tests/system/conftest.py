"""Fixtures of the system tests: the .deb, the cached Debian tree, booted containers.

Everything here acts as an administrator would: the package is installed with apt from a
local file, keys are made and plugins packaged and signed with the installed ``forgeonectl``
inside the container, and the daemon is driven with ``systemctl``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nspawn_harness import Container, base_image, missing_tools

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "examples/sample-plugin"
SAMPLE_WASM = SAMPLE_DIR / "target/wasm32-unknown-unknown/release/forgeone_sample_plugin.wasm"
DEB_NAME = "forgeoned_amd64.deb"
KEYS = "/root/keys"
PLUGINS_D = "/etc/forgeoned/plugins.d"

# Used only when the Rust sample cannot be built here: the smallest ABI v1 plugin with a
# `handle` that echoes its input.
FALLBACK_WAT = """
(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "init") (result i32) i32.const 0)
  (func (export "start") (result i32) i32.const 0)
  (func (export "stop") (result i32) i32.const 0)
  (func (export "pause") (result i32) i32.const 0)
  (func (export "resume") (result i32) i32.const 0)
  (func (export "unload") (result i32) i32.const 0)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "handle") (param $ptr i32) (param $len i32) (result i32)
    (drop (call $output (local.get $ptr) (local.get $len)))
    i32.const 0))
"""
FALLBACK_MANIFEST = """name = "sample"
version = "1.0.0"
abi = 1
[capabilities]
log = true
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "system tests need root (systemd-nspawn)"
    elif tools := missing_tools():
        reason = f"system tests need {', '.join(tools)}"
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("system"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def deb_file() -> Path:
    """``make -C packaging deb`` (only rebuilds when a source changed)."""
    proc = subprocess.run(
        ["make", "-s", "-C", str(REPO / "packaging"), "deb"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"make deb failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    out = subprocess.run(
        ["make", "-s", "-C", str(REPO / "packaging"), "print-deb"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="session")
def debian_root() -> Path:
    return base_image()


@dataclass(frozen=True, slots=True)
class SamplePlugin:
    """A built plugin module and its manifest (TOML text), ready to package and sign."""

    wasm: bytes
    manifest: str
    rust: bool

    def manifest_for(self, version: str, name: str = "sample") -> str:
        text = re.sub(r"(?m)^version\s*=.*$", f'version = "{version}"', self.manifest, count=1)
        return re.sub(r"(?m)^name\s*=.*$", f'name = "{name}"', text, count=1)


@pytest.fixture(scope="session")
def sample_plugin() -> SamplePlugin:
    """The Rust sample plugin if it builds here, else an equivalent inline-WAT plugin."""
    manifest = SAMPLE_DIR / "manifest.toml"
    cargo = Path("/usr/bin/cargo")
    if (SAMPLE_DIR / "Cargo.toml").exists() and manifest.exists() and cargo.exists():
        proc = subprocess.run(
            [
                str(cargo),
                "build",
                "--offline",
                "--release",
                "-q",
                "--target",
                "wasm32-unknown-unknown",
            ],
            cwd=SAMPLE_DIR,
            env={**os.environ, "RUSTC": "/usr/bin/rustc"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"sample plugin build failed: {proc.stderr[-2000:]}"
        return SamplePlugin(SAMPLE_WASM.read_bytes(), manifest.read_text(), rust=True)
    import wasmtime

    return SamplePlugin(bytes(wasmtime.wat2wasm(FALLBACK_WAT)), FALLBACK_MANIFEST, rust=False)


def _boot(debian_root: Path, deb_file: Path, workdir: Path) -> Container:
    share = workdir / "share"
    share.mkdir(parents=True)
    shutil.copyfile(deb_file, share / DEB_NAME)
    container = Container(debian_root, share, workdir / "nspawn.log")
    container.boot()
    return container


@pytest.fixture
def fresh_container(debian_root: Path, deb_file: Path, tmp_path: Path) -> Iterator[Container]:
    """A freshly booted Debian 12 with the package file at /mnt/share, not yet installed."""
    container = _boot(debian_root, deb_file, tmp_path)
    try:
        yield container
    finally:
        container.close()


def install_package(container: Container) -> None:
    container.run(
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        f"/mnt/share/{DEB_NAME}",
        timeout=180,
    )


def sign_into(
    container: Container,
    plugin: SamplePlugin,
    version: str,
    dest: str,
    *,
    name: str = "sample",
    key: str = "admin",
) -> str:
    """Package + sign ``plugin`` as ``name`` ``version`` with ``KEYS/key.key`` inside the
    container, then move it into ``dest`` by rename (never half-written); returns its sha256."""
    module = container.put("plugin.module.wasm", plugin.wasm)
    manifest = container.put(f"{name}-{version}.toml", plugin.manifest_for(version, name).encode())
    unsigned = f"/root/{name}-{version}.unsigned.wasm"
    staged = f"{os.path.dirname(dest)}/.{name}-{version}.incoming"
    container.run("forgeonectl", "package", module, "--manifest", manifest, "-o", unsigned)
    container.run("forgeonectl", "sign", "--key", f"{KEYS}/{key}.key", unsigned, "-o", staged)
    container.run("chmod", "0644", staged)
    container.run("mv", staged, dest)
    return container.run("sha256sum", dest).stdout.split()[0]


def trust_new_key(container: Container, key: str) -> None:
    """``forgeonectl keys generate`` a key pair and put its public half in trusted.d."""
    container.run("forgeonectl", "keys", "generate", "--out", KEYS, "--name", key)
    container.run(
        "install", "-m", "0644", f"{KEYS}/{key}.pub", f"/etc/forgeoned/trusted.d/{key}.pub"
    )


def unit_property(container: Container, name: str) -> str:
    out = container.run("systemctl", "show", "-p", name, "--value", "forgeoned").stdout
    return out.strip()


@pytest.fixture(scope="module")
def served(
    debian_root: Path,
    deb_file: Path,
    sample_plugin: SamplePlugin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Container]:
    """The package installed, an admin key trusted, the sample signed into plugins.d, and
    the unit (started by the package, stopped for the setup) started again."""
    container = _boot(debian_root, deb_file, tmp_path_factory.mktemp("served"))
    try:
        install_package(container)
        container.run("systemctl", "stop", "forgeoned", timeout=120)
        trust_new_key(container, "admin")
        sign_into(container, sample_plugin, "1.0.0", f"{PLUGINS_D}/sample.wasm")
        started = container.run("systemctl", "start", "forgeoned", timeout=180, check=False)
        if started.returncode != 0:
            log = container.run("journalctl", "-u", "forgeoned", "-n", "40", "--no-pager")
            pytest.fail(f"forgeoned did not start:\n{log.stdout}", pytrace=False)
        yield container
    finally:
        container.close()
