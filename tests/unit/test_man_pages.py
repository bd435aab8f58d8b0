"""The man pages document what the code does: forgeoned.toml(5) names every config key and
says, for each top-level one, whether a reload applies it as ``Config`` marks it; forgeoned(8)
and forgeonectl(1) name every option and command."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from forgeoned.cli import build_parser
from forgeoned.cli.completion import command_tree
from forgeoned.core.control_config import _TOP_KEYS as CONTROL_KEYS
from forgeoned.daemon import config_file as cfg
from forgeoned.daemon.check import parse_args
from forgeoned.daemon.config import Config

MAN = Path(__file__).resolve().parents[2] / "packaging/man"
TOML5 = (MAN / "forgeoned.toml.5").read_text()
TABLES = {
    "compile", "restart", "capabilities", "trust", "control", "limits", "metrics", "audit", "http",
    "staging",
}  # fmt: skip


def entries(page: str) -> dict[str, str]:
    """``.B key ...`` entry heads -> the text up to the next entry or section."""
    out: dict[str, str] = {}
    for block in re.split(r"\n\.(?:TP|SH|PP)\b", page):
        head = re.match(r"\s*\.B ([a-z_.\[\]A-Z]+)", block)
        if head:
            out[head.group(1)] = block
    return out


def live(key: str) -> bool:
    field = next(f for f in fields(Config) if f.metadata.get("key", f.name) == key)
    return bool(field.metadata.get("live"))


@pytest.mark.parametrize("key", sorted(cfg._TOP - TABLES))
def test_every_top_level_key_says_whether_a_reload_applies_it(key: str) -> None:
    text = entries(TOML5)[key]
    said = "(reload" in text
    assert said != ("(restart)" in text), text
    assert said == live(key), f"{key}: the page says {'reload' if said else 'restart'}"


@pytest.mark.parametrize(
    "key",
    sorted(cfg._COMPILE | cfg._RESTART | cfg._METRICS | cfg._AUDIT | CONTROL_KEYS - {"roles"}),
)
def test_every_table_key_is_documented(key: str) -> None:
    assert re.search(rf"^\.B \[*(control\.)?{key}\]*\b", TOML5, re.M), key


def test_forgeoned_8_documents_every_option() -> None:
    page = (MAN / "forgeoned.8").read_text()
    options = {
        o for a in parse_args(["--config", "x"]).__dict__ for o in [f"--{a.replace('_', '-')}"]
    }
    for option in options:
        assert option.replace("-", r"\-") in page, option


def test_forgeonectl_1_documents_every_command() -> None:
    page = (MAN / "forgeonectl.1").read_text().replace("\\-", "-")
    for path in command_tree(build_parser()):
        if path:
            words = path.split()
            assert re.search(r"\b" + r"\s+".join(map(re.escape, words)) + r"\b", page), path
