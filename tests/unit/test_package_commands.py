"""The Debian package ships every command pyproject.toml declares: a wrapper in packaging/bin
that runs the same entry point from the private virtual environment, installed into /usr/bin
by packaging/Makefile, with a man page that the Makefile installs and that names each option.
(``forgeoned-fetch``, the Kubernetes init container's step, was declared but not shipped.)
tests/integration/test_deb_contents.py builds the .deb and looks inside it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from forgeoned.daemon.fetch import main as fetch_main

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
MAKEFILE = (PACKAGING / "Makefile").read_text()
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
SCRIPTS: dict[str, str] = PROJECT["scripts"]
VENV_PYTHON = "#!/usr/lib/forgeoned/venv/bin/python3 -I"


def _wrapper_target(path: Path) -> str:
    """``module:function`` the wrapper imports and calls."""
    tree = ast.parse(path.read_text())
    [imported] = [n for n in tree.body if isinstance(n, ast.ImportFrom)
                  and n.module and n.module.startswith("forgeoned")]  # fmt: skip
    [name] = imported.names
    assert f"sys.exit({name.name}())" in path.read_text(), path
    return f"{imported.module}:{name.name}"


def test_the_package_declares_the_fetch_command() -> None:
    assert SCRIPTS["forgeoned-fetch"] == "forgeoned.daemon.fetch:main"


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_each_command_has_a_wrapper_on_the_private_venv(command: str) -> None:
    wrapper = PACKAGING / "bin" / command
    assert wrapper.is_file(), f"packaging/bin/{command} is missing"
    assert wrapper.stat().st_mode & 0o111, f"packaging/bin/{command} is not executable"
    assert wrapper.read_text().splitlines()[0] == VENV_PYTHON
    module, function = SCRIPTS[command].split(":")
    target = _wrapper_target(wrapper)
    # ``forgeoned.daemon:main`` is re-exported by the package; compare what is called
    assert target.rsplit(":", 1)[1] == function and target.startswith(module), (target, module)


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_the_makefile_installs_each_command_and_its_man_page(command: str) -> None:
    assert re.search(
        rf"^\tinstall -D -m 0755 bin/{re.escape(command)} \$\(ROOT\)/usr/bin/{re.escape(command)}$",
        MAKEFILE,
        re.M,
    ), command
    [page] = [p for p in (PACKAGING / "man").iterdir() if p.stem == command]
    section = page.suffix.lstrip(".")
    assert f"man/{page.name} > $(ROOT)/usr/share/man/man{section}/{page.name}.gz" in MAKEFILE


def test_forgeoned_fetch_8_documents_every_option_and_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = (PACKAGING / "man" / "forgeoned-fetch.8").read_text().replace("\\-", "-")
    with pytest.raises(SystemExit):
        fetch_main(["--help"])
    options = set(re.findall(r"--[a-z][a-z-]+", capsys.readouterr().out)) - {"--help"}
    assert options == {"--config", "--once"}
    for option in sorted(options):
        assert f".BI {option}" in page or f".B {option}" in page, option
    for code in ("0", "1", "78"):
        assert re.search(rf"^\.TP\n\.B {code}\n", page, re.M), code
