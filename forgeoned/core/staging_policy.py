"""The operator's ``[staging]`` table: what production requires of staging, and what
``promote`` requires before it signs.

```toml
[staging]
require_staging = true        # production: load only artifacts with a valid attestation
attesters = ["staging"]       # the attester role: trusted.d key names whose attestations count
min_calls = 10                # promote refuses fewer handle calls than this …
min_seconds = 3600            # … or less time in staging than this
valid_days = 30               # how long a promote's attestation stays valid
review_interval_days = 90     # each plugin's review is due this long after the last one
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from forgeoned.errors import ConfigError

KEYS: Final = frozenset(
    {"require_staging", "attesters", "min_calls", "min_seconds", "valid_days",
     "review_interval_days"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StagingPolicy:
    required: bool = False
    attesters: frozenset[str] = frozenset()
    min_calls: int = 1
    min_seconds: float = 0.0
    valid_days: float = 30.0
    review_interval_days: float = 90.0


def _number(raw: dict[str, Any], key: str, default: float, low: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ConfigError(f"staging.{key}: must be a number >= {low}, got {value!r}")
    return float(value)


def parse_staging_policy(raw: Any) -> StagingPolicy:
    """The ``[staging]`` table (absent: nothing required)."""
    if raw is None:
        return StagingPolicy()
    if not isinstance(raw, dict):
        raise ConfigError("staging: must be a table")
    unknown = set(raw) - KEYS
    if unknown:
        raise ConfigError(f"staging.{sorted(unknown)[0]}: unknown key")
    required = raw.get("require_staging", False)
    if not isinstance(required, bool):
        raise ConfigError(f"staging.require_staging: must be true or false, got {required!r}")
    attesters = raw.get("attesters", [])
    if not isinstance(attesters, list) or not all(isinstance(a, str) and a for a in attesters):
        raise ConfigError("staging.attesters: must be a list of trusted key names")
    if required and not attesters:
        raise ConfigError("staging.attesters: require_staging needs at least one attester key")
    return StagingPolicy(
        required=required,
        attesters=frozenset(a.removesuffix(".pub").removesuffix(".pem") for a in attesters),
        min_calls=int(_number(raw, "min_calls", 1, 0)),
        min_seconds=_number(raw, "min_seconds", 0, 0),
        valid_days=_number(raw, "valid_days", 30, 0.001),
        review_interval_days=_number(raw, "review_interval_days", 90, 0.000001),
    )
