"""Where the project's shared reference files are: ``../shared`` beside the checkout (CI always
has it), or the directory ``FORGEONE_SHARED`` names (a git worktree elsewhere). On a user's
fresh clone it is absent and the tests that need it skip, naming the path they looked at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

SHARED: Final = Path(
    os.environ.get("FORGEONE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared"
)
WASMSIGN2_VECTORS: Final = SHARED / "vectors" / "wasmsign2"
WHERE: Final = "sibling 'shared/' of the checkout, or set FORGEONE_SHARED"
