"""Fixtures of the system tests: the .deb, the cached Debian tree, booted containers."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn_harness import Container, base_image, missing_tools
from system_admin import (
    DEB_NAME,
    PLUGINS_D,
    REPO,
    SamplePlugin,
    build_sample_plugin,
    install_package,
    sign_into,
    trust_new_key,
)


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


@pytest.fixture(scope="session")
def sample_plugin() -> SamplePlugin:
    return build_sample_plugin()


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
