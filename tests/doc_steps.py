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
