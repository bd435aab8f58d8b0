"""Rules and caps that once were spelled in several modules are defined once (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forgeoned.adapters.control.routes import resolve
from forgeoned.core.control_config import MAX_BODY_BYTES, ControlConfig, parse_control_config
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.daemon.config import Config
from forgeoned.errors import BadRequestError

SOURCE = Path(__file__).resolve().parents[2] / "forgeoned"


def _spelled(pattern: str) -> dict[str, str]:
    """``{file: line}`` of every source line matching ``pattern``."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for line in path.read_text().splitlines():
            if re.search(pattern, line):
                found[str(path.relative_to(SOURCE))] = line.strip()
    return found


def test_the_plugin_name_rule_is_spelled_once() -> None:
    assert list(_spelled(re.escape("[a-z0-9][a-z0-9._-]"))) == ["core/manifest.py"]


def test_the_64_mib_cap_is_spelled_once() -> None:
    found = _spelled(r"64 \* 1024 \* 1024|64 << 20|1 << 26")
    assert found.pop("core/wasm_sections.py").startswith("MAX_MODULE_BYTES")
    # the only other 64 MiB is the compile worker's smallest allowed memory, not a size cap
    assert list(found) == ["daemon/config_file.py"]
    assert "memory_bytes" in found["daemon/config_file.py"]


def test_every_64_mib_default_is_the_module_cap() -> None:
    assert MAX_BODY_BYTES == MAX_MODULE_BYTES == 64 << 20
    assert ControlConfig().max_body_bytes == parse_control_config({}).max_body_bytes
    assert Config(path=Path("x")).max_artifact_bytes == MAX_MODULE_BYTES


def test_the_api_refuses_a_name_the_manifest_refuses() -> None:
    with pytest.raises(BadRequestError):
        resolve("GET", "/v1/plugins/Bad_Name")
    assert resolve("GET", "/v1/plugins/good-name.2").plugin == "good-name.2"
