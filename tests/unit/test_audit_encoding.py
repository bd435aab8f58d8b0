"""The audit chain's fast encoders give exactly what the plain standard-library calls give.

``rfc3339`` formats the date part once per second and ``canonical`` reuses one JSON encoder
(both on every audit entry's path); their output must not move by a byte, or chains written
before and after the change would differ in what is hashed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgeoned.core.audit_chain import canonical, rfc3339

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def _reference_ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _reference_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@given(st.floats(min_value=-1e9, max_value=7e9, allow_nan=False))
def test_rfc3339_matches_datetime(epoch: float) -> None:
    assert rfc3339(epoch) == _reference_ts(epoch)


@given(st.integers(min_value=0, max_value=7 * 10**15))
def test_rfc3339_rounds_half_microseconds_like_datetime(micros: int) -> None:
    epoch = micros / 1e6 + 5e-7  # as close to a half microsecond as a float gets
    assert rfc3339(epoch) == _reference_ts(epoch)


def test_rfc3339_edges() -> None:
    for epoch in (0.0, 0.9999995, 1.9999999999, -0.5, -1.0000005, 1764079200.0000005):
        assert rfc3339(epoch) == _reference_ts(epoch), epoch
    assert rfc3339(1764079200.25) == "2025-11-25T14:00:00.250000Z"


@given(st.dictionaries(st.text(), JSON, max_size=8))
def test_canonical_matches_json_dumps(entry: dict[str, Any]) -> None:
    assert canonical(entry) == _reference_json(entry)


def test_canonical_still_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical({"x": float("nan")})
