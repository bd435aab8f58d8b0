"""Points in time as operators type them: ``--since`` and ``?since=`` of the audit commands.

Accepted: Unix seconds (``1700000000.5``), an ISO-8601 time (naive means UTC), or an age
before ``now`` such as ``90s``, ``15m``, ``2h``, ``7d``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from forgeoned.errors import BadRequestError

_AGE: Final = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: float) -> float:
    """``text`` as Unix seconds; :class:`BadRequestError` (one line) for anything else."""
    age = _AGE.match(text)
    if age:
        return now - float(age.group(1)) * _UNIT_S[age.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(
            f"bad time {text[:40]!r}: give Unix seconds, ISO-8601, or an age like 2h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
