"""Property tests: the section and signature parsers never raise anything but our errors,
and no mutation or truncation of a signed module passes verification in production mode.

Bounded: a fixed number of examples and a per-example deadline, so ``make test`` stays fast.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeoned.cli.devtools import make_signed_plugin, package_plugin, test_key, trust_policy_for
from forgeoned.core import signature as sig
from forgeoned.core import wasm_sections as ws
from forgeoned.core.artifact import verify_artifact
from forgeoned.core.trust import Mode
from forgeoned.errors import ArtifactError, ForgeonedError

KEY = test_key(5)
TRUST = trust_policy_for(KEY)
WAT = '(module (memory (export "memory") 1))'
MANIFEST = {"name": "fuzz", "version": "1.0.0", "abi": 1}
SEED = make_signed_plugin(WAT, MANIFEST, KEY)
UNSIGNED = package_plugin(WAT, MANIFEST)
FAST = settings(
    max_examples=300,
    deadline=500,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)


def run_pipeline(data: bytes, detached: bytes | None = None) -> None:
    for mode in Mode:
        try:
            verify_artifact(data, detached=detached, trust=TRUST, mode=mode, now=0.0)
        except ForgeonedError:
            pass


def verify_production(data: bytes) -> None:
    verify_artifact(data, detached=None, trust=TRUST, mode=Mode.PRODUCTION, now=0.0)


def test_the_unmutated_seed_verifies_in_production() -> None:
    verify_production(SEED)  # else the rejections below would prove nothing


@FAST
@given(st.binary(max_size=512))
def test_random_bytes_after_the_header(tail: bytes) -> None:
    run_pipeline(ws.HEADER + tail)
    try:
        ws.parse_sections(tail)
    except ForgeonedError:
        pass


@FAST
@given(st.binary(max_size=512))
def test_random_signature_payloads(payload: bytes) -> None:
    try:
        sig.decode(payload)
    except ForgeonedError:
        pass
    try:
        sig.decode(b"\x01\x01\x01" + payload)
    except ForgeonedError:
        pass
    run_pipeline(UNSIGNED, b"\x01\x01\x01" + payload)
    embedded = ws.encode_custom_section(sig.SECTION_NAME, b"\x01\x01\x01" + payload)
    run_pipeline(ws.HEADER + embedded + UNSIGNED[len(ws.HEADER) :])


@FAST
@given(
    st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, len(SEED)),
)
def test_mutated_signed_module(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(SEED)
    for index, value in flips:
        data[index] = value
    mutated = bytes(data)
    run_pipeline(mutated)
    run_pipeline(mutated[:cut])
    if mutated != SEED:
        with pytest.raises(ArtifactError):
            verify_production(mutated)
    if mutated[:cut] != SEED:
        with pytest.raises(ArtifactError):
            verify_production(mutated[:cut])


@FAST
@given(st.lists(st.tuples(st.integers(0, 13), st.binary(max_size=24)), max_size=8))
def test_structured_sections(parts: list[tuple[int, bytes]]) -> None:
    """Well-framed sections with arbitrary ids and contents, so parsing gets deep."""
    sections = [bytes((sid,)) + ws.encode_u32(len(body)) + body for sid, body in parts]
    run_pipeline(ws.build_module(sections))
