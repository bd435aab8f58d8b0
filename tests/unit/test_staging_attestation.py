"""Staging attestations, pure: the in-toto Statement v1 / DSSE shape, and each reason a
``require_staging`` check refuses with; the ``[staging]`` table; the review book's dates."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from forgeoned.adapters.crypto.attest import sign_attestation
from forgeoned.cli.devtools import test_key, trust_policy_for
from forgeoned.core.attestation import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    check_attestations,
    open_envelope,
    pae,
)
from forgeoned.core.review import Incident, Review, ReviewBook
from forgeoned.core.staging_policy import parse_staging_policy
from forgeoned.errors import ConfigError, StagingError, StagingReason

NOW = 1_800_000_000.0
SHA = "ab" * 32
STAGER, AUTHOR, STRANGER = test_key(41), test_key(7), test_key(99)
TRUST = trust_policy_for(STAGER, AUTHOR)  # key0 = STAGER (the attester), key1 = AUTHOR
ATTESTERS = frozenset({"key0"})


def _env(
    key: Any = STAGER, sha: str = SHA, expires: float = NOW + 100, name: str = "hello"
) -> bytes:
    return sign_attestation(key, name, "1.0.0", sha, {"calls": 5, "faults": 0}, expires)


def _check(*raws: bytes) -> object:
    return check_attestations(raws, "hello", SHA, TRUST, ATTESTERS, NOW)


def test_the_envelope_is_dsse_over_an_in_toto_statement_v1() -> None:
    env = json.loads(_env())
    assert env["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    body = base64.b64decode(env["payload"])
    st = json.loads(body)
    assert st["_type"] == STATEMENT_TYPE and st["predicateType"] == PREDICATE_TYPE
    assert st["subject"] == [{"name": "hello@1.0.0", "digest": {"sha256": SHA}}]
    assert st["predicate"]["evidence"] == {"calls": 5, "faults": 0}
    [sig] = env["signatures"]
    assert sig["keyid"].startswith("SHA256:")
    assert TRUST.ed25519.verify(STAGER.public_key, pae(PAYLOAD_TYPE, body),
                                base64.b64decode(sig["sig"]))  # fmt: skip
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    assert open_envelope(_env()).plugin == "hello"


@pytest.mark.parametrize(
    ("raws", "why"),
    [
        ((), StagingReason.UNATTESTED),
        ((b"not json", _env(name="other")), StagingReason.UNATTESTED),
        ((_env(sha="cd" * 32),), StagingReason.MISMATCH),
        ((_env(expires=NOW - 1),), StagingReason.EXPIRED),
        ((_env(key=AUTHOR),), StagingReason.WRONG_ROLE),
        ((_env(key=STRANGER),), StagingReason.FORGED),
    ],
)
def test_each_refusal_has_its_reason(raws: tuple[bytes, ...], why: StagingReason) -> None:
    with pytest.raises(StagingError) as caught:
        _check(*raws)
    assert caught.value.code == why.value


def test_an_altered_payload_is_forged_and_a_valid_one_among_others_wins() -> None:
    env = json.loads(_env())
    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["evidence"]["calls"] = 1000
    env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    with pytest.raises(StagingError) as caught:
        _check(json.dumps(env).encode())
    assert caught.value.code == StagingReason.FORGED.value
    assert _check(json.dumps(env).encode(), _env(sha="cd" * 32), _env()) is not None


def test_the_staging_table() -> None:
    p = parse_staging_policy({"require_staging": True, "attesters": ["stager.pub"],
                              "min_calls": 3, "review_interval_days": 30})  # fmt: skip
    assert (p.required, p.attesters, p.min_calls, p.review_interval_days) == (
        True, frozenset({"stager"}), 3, 30.0,
    )  # fmt: skip
    assert parse_staging_policy(None).review_interval_days == 90.0
    for bad, message in (
        ({"require_staging": True}, "needs at least one attester"),
        ({"min_calls": -1}, "min_calls"),
        ({"surprise": 1}, "staging.surprise: unknown key"),
        ({"require_staging": "yes"}, "true or false"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_staging_policy(bad)


def test_review_dates() -> None:
    book, day = ReviewBook(), 86400.0
    assert book.activated("hello", NOW) and not book.activated("hello", NOW + 5)
    assert book.due(90 * day) == {"hello": NOW + 90 * day}
    assert book.overdue(90 * day, NOW + 89 * day) == []
    assert [n for n, _ in book.overdue(90 * day, NOW + 91 * day)] == ["hello"]
    book.reviewed("hello", Review(NOW + 91 * day, "ops", "1.0.0", "fine"))
    assert book.due(90 * day)["hello"] == NOW + 181 * day
    book.incident("hello", Incident(NOW + 100 * day, "plugin.quarantined", "1.0.0", "trap"))
    assert book.due(90 * day)["hello"] == NOW + 100 * day  # due at once
    again = ReviewBook.from_json(json.loads(json.dumps(book.to_json())))
    assert again.plugins == book.plugins
    with pytest.raises(ValueError, match="not a review book"):
        ReviewBook.from_json({"plugins": {"x": {}}})
