"""The built .deb ships the three commands with their man pages, and its ``forgeoned-fetch``
(the wrapper in /usr/bin on the private venv) fills plugins.d from a real registry.

The package is built with ``make -C packaging deb`` (rebuilt only when a source changed) and
unpacked with ``dpkg-deb -x``; the unpacked venv's interpreter link points at Debian's
/usr/bin/python3, whose venv lookup (pyvenv.cfg beside bin/) works from any directory, so
the packaged code runs here without installing the package. Installing it on a booted
Debian is tests/system/test_system_package.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from daemon_kit import REPO, Env, plugin
from fleet_kit import REPO as IMAGE_REPO
from fleet_kit import push, source_toml
from registry_kit import REGISTRY, registry

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or not Path("/usr/bin/python3").exists(),
    reason="building the .deb needs dpkg-deb and Debian's /usr/bin/python3",
)

COMMANDS = ("forgeoned", "forgeonectl", "forgeoned-fetch")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the unpacked package root, ``dpkg-deb -c``'s listing)."""
    make = ["make", "-s", "-C", str(REPO / "packaging")]
    built = subprocess.run([*make, "deb"], capture_output=True, text=True, timeout=600,
                           check=False)  # fmt: skip
    assert built.returncode == 0, f"make deb failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}"
    deb = subprocess.run([*make, "print-deb"], capture_output=True, text=True, timeout=60,
                         check=True).stdout.strip()  # fmt: skip
    root = tmp_path_factory.mktemp("deb")
    subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True, timeout=120)
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=True, timeout=60).stdout  # fmt: skip
    return root, listing


def _mode(listing: str, path: str) -> str:
    [line] = [row for row in listing.splitlines() if row.endswith(f" ./{path}")]
    return line.split()[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_is_in_usr_bin_with_its_man_page(
    unpacked: tuple[Path, str], command: str
) -> None:
    root, listing = unpacked
    assert _mode(listing, f"usr/bin/{command}") == "-rwxr-xr-x"
    first = (root / "usr/bin" / command).read_text().splitlines()[0]
    assert first == "#!/usr/lib/forgeoned/venv/bin/python3 -I"
    section = "1" if command == "forgeonectl" else "8"
    assert _mode(listing, f"usr/share/man/man{section}/{command}.{section}.gz") == "-rw-r--r--"


def _packaged_fetch(root: Path, env: Env) -> subprocess.CompletedProcess[str]:
    python = root / "usr/lib/forgeoned/venv/bin/python3"
    script = root / "usr/bin/forgeoned-fetch"
    return subprocess.run(
        [str(python), "-I", str(script), "--config", str(env.config), "--once"],
        cwd="/", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")
def test_the_packaged_forgeoned_fetch_fills_plugins_d_from_a_registry(
    unpacked: tuple[Path, str], tmp_path: Path
) -> None:
    root, _ = unpacked
    with registry(tmp_path / "registry") as reg:
        env = Env(tmp_path)
        push(reg, tmp_path, plugin("hello", "1.0.0"), "stable", env.root / "trusted.d")
        env.write_config(source_toml("hello", reg.ref(IMAGE_REPO, "stable")))
        run = _packaged_fetch(root, env)
        assert run.returncode == 0, run.stderr
        assert "hello: synced hello 1.0.0 sha256:" in run.stderr
        assert (env.plugins / "oci-hello.wasm").read_bytes() == plugin("hello", "1.0.0")
    (env.config).write_text("[[sources]]\nname = 1\n")
    bad = _packaged_fetch(root, env)
    assert bad.returncode == 78 and bad.stderr.startswith("forgeoned-fetch: "), bad.stderr


def test_no_python_module_in_the_venv_is_executable(unpacked: tuple[Path, str]) -> None:
    """lintian's executable-not-elf-or-script (certifi ships an executable test module)."""
    _, listing = unpacked
    rows = [r for r in listing.splitlines() if " ./usr/lib/forgeoned/venv/lib/" in r]
    assert any(r.endswith(".py") for r in rows)
    assert [r for r in rows if r.endswith(".py") and "x" in r.split()[0]] == []
