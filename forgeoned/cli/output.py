"""How forgeonectl writes to stdout: raw bytes, streamed chunks, JSON and aligned tables."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any


def write_out(data: bytes) -> None:
    """Write bytes to stdout (a reader that went away is handled in ``forgeoned.cli.main``)."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write_lines(chunks: Iterable[bytes]) -> None:
    """Write chunks to stdout as they come (a long export is never held whole)."""
    out = sys.stdout.buffer
    try:
        for data in chunks:
            out.write(data)
        out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """A plain aligned text table with upper-case headers."""
    cells = [[c.upper() for c in columns]] + [
        [str(row.get(c, "")) for c in columns] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )
