"""The main path of docs/operations.md as the system test runs it: the fenced ``sh`` blocks
that follow a ``<!-- system-test: main-path STEP -->`` marker, in document order."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Final

OPERATIONS: Final = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
MAIN_PATH: Final = (
    "install", "access", "trust", "deploy", "upgrade", "remove", "journal", "purge",
)  # fmt: skip
_BLOCK: Final = re.compile(
    r"^[ \t]*<!-- system-test: main-path (?P<step>[a-z-]+) -->\n"
    r"(?P<indent>[ \t]*)```sh\n(?P<body>.*?)^[ \t]*```$",
    re.M | re.S,
)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    script: str  # the block's commands, as written (indentation of a list item removed)


def main_path(text: str | None = None) -> list[Step]:
    """Every marked block of ``text`` (default: operations.md), in order."""
    source = OPERATIONS.read_text() if text is None else text
    return [
        Step(m.group("step"), textwrap.dedent(m.group("body"))) for m in _BLOCK.finditer(source)
    ]


AUTHORING: Final = OPERATIONS.parent / "plugin-authoring.md"
_TAGGED: Final = (
    r"^[ \t]*<!-- {tag} (?P<step>[a-z-]+) -->\n"
    r"(?P<indent>[ \t]*)```(?P<lang>[a-z]+)\n(?P<body>.*?)^[ \t]*```$"
)


@dataclass(frozen=True, slots=True)
class Block:
    name: str
    lang: str  # the fence's language: sh, rust, toml, ...
    text: str  # as written, the indentation of a list item removed


def marked_blocks(path: Path = AUTHORING, tag: str = "authoring-guide") -> dict[str, Block]:
    """The fenced blocks of ``path`` that follow a ``<!-- TAG STEP -->`` marker, by step."""
    pattern = re.compile(_TAGGED.format(tag=re.escape(tag)), re.M | re.S)
    blocks = [
        Block(m.group("step"), m.group("lang"), textwrap.dedent(m.group("body")))
        for m in pattern.finditer(path.read_text())
    ]
    by_name = {b.name: b for b in blocks}
    assert len(by_name) == len(blocks), f"{path}: a step is marked twice"
    return by_name


PLUGIN_AUTHORING: Final = OPERATIONS.with_name("plugin-authoring.md")
_DOC_TEST: Final = re.compile(
    r"^[ \t]*<!-- doc-test: (?P<path>[a-z-]+) (?P<step>[a-z-]+) -->\n"
    r"(?P<indent>[ \t]*)```sh\n(?P<body>.*?)^[ \t]*```$",
    re.M | re.S,
)


def doc_test_blocks(path_name: str, *docs: Path) -> list[Step]:
    """The ``sh`` blocks of ``docs`` marked ``<!-- doc-test: PATH_NAME STEP -->``, in order."""
    out: list[Step] = []
    for doc in docs:
        for m in _DOC_TEST.finditer(doc.read_text()):
            if m.group("path") == path_name:
                out.append(Step(m.group("step"), textwrap.dedent(m.group("body"))))
    return out
