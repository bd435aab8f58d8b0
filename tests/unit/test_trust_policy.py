"""Operator trust policy: the [trust] table, key files and the trust directory."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from forgeoned.adapters.crypto.keys import (
    generate_keypair,
    load_public_key,
    load_secret_key,
    load_trust_dir,
    public_key_pem,
)
from forgeoned.cli.devtools import test_key, trust_policy_for
from forgeoned.core.trust import Mode, TrustPolicyConfig, parse_mode, parse_trust_policy
from forgeoned.errors import ConfigError

PK = test_key(1).public_key


def test_full_policy_parses() -> None:
    config = parse_trust_policy(
        {
            "revoked": [PK.hex(), "01" + test_key(2).public_key.hex()],
            "scopes": {"ops.pub": ["billing-*", "audit"], "dev": ["dev-*"]},
            "thresholds": {"payments": 2},
            "expires": {
                "ops.pub": dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
                "dev": "2028-01-01T00:00:00Z",
            },
        }
    )
    assert config.expires == {"ops": 1798761600.0, "dev": 1830297600.0}
    assert config.revoked == {PK, test_key(2).public_key}
    assert config.scopes == {"ops": ("billing-*", "audit"), "dev": ("dev-*",)}
    assert config.thresholds == {"payments": 2}
    assert parse_trust_policy(None) == TrustPolicyConfig()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], r"\[trust\] must be a table"),
        ({"revoke": []}, "trust.revoke: unknown key"),
        ({"revoked": "abc"}, "trust.revoked must be a list"),
        ({"revoked": ["ops.pub"]}, "not a hex Ed25519 public key"),
        ({"revoked": [PK.hex()[:-2]]}, "not a hex Ed25519 public key"),
        ({"scopes": {"ops": []}}, "trust.scopes.ops must be a non-empty list"),
        ({"scopes": {"ops": ["Bad Name"]}}, "is not a plugin-name glob"),
        ({"scopes": ["x"]}, "trust.scopes must be a table"),
        ({"thresholds": {"pay": 0}}, r"trust.thresholds.pay = 0 is outside 1..64"),
        ({"thresholds": {"pay": True}}, "must be an integer"),
        ({"thresholds": {"Pay Me": 2}}, "not a plugin name or glob"),
        ({"expires": {"ops": 5}}, "trust.expires.ops must be a date and time"),
        ({"expires": {"ops": "soon"}}, "'soon' is not an RFC 3339 date and time"),
        ({"expires": {"ops": dt.datetime(2027, 1, 1)}}, "has no UTC offset"),
        ({"expires": []}, "trust.expires must be a table"),
    ],
)
def test_bad_policy_names_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_trust_policy(raw)


def test_mode() -> None:
    assert parse_mode("production") is Mode.PRODUCTION
    assert parse_mode("development") is Mode.DEVELOPMENT
    assert parse_mode("staging") is Mode.STAGING
    with pytest.raises(
        ConfigError, match="mode must be one of 'production', 'development', 'staging'"
    ):
        parse_mode("prod")


def test_generated_keys_use_wasmsign2_encodings(tmp_path: Path) -> None:
    secret_path, public_path = generate_keypair(tmp_path / "keys", "ops")
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    raw_secret, raw_public = secret_path.read_bytes(), public_path.read_bytes()
    assert len(raw_secret) == 65 and raw_secret[0] == 0x81
    assert len(raw_public) == 33 and raw_public[0] == 0x01
    assert raw_secret[33:] == raw_public[1:]
    key = load_secret_key(secret_path)
    assert load_public_key(public_path) == key.public_key


def test_generate_never_overwrites(tmp_path: Path) -> None:
    secret_path, public_path = generate_keypair(tmp_path, "ops")
    before = (secret_path.read_bytes(), public_path.read_bytes())
    with pytest.raises(ConfigError, match="already exists; refusing to overwrite"):
        generate_keypair(tmp_path, "ops")
    assert (secret_path.read_bytes(), public_path.read_bytes()) == before


def test_corrupt_secret_key_is_refused(tmp_path: Path) -> None:
    secret_path, _ = generate_keypair(tmp_path, "ops")
    data = bytearray(secret_path.read_bytes())
    data[-1] ^= 1
    secret_path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="public half does not match"):
        load_secret_key(secret_path)
    (tmp_path / "short.key").write_bytes(b"\x81" + bytes(10))
    with pytest.raises(ConfigError, match="not a secret key"):
        load_secret_key(tmp_path / "short.key")


def test_trust_dir_reads_pub_and_pem_and_ignores_the_rest(tmp_path: Path) -> None:
    (tmp_path / "ops.pub").write_bytes(b"\x01" + PK)
    (tmp_path / "dev.pem").write_bytes(public_key_pem(test_key(2).public_key))
    (tmp_path / ".hidden.pub").write_bytes(b"junk")
    (tmp_path / "README").write_text("not a key")
    os.symlink(tmp_path / "ops.pub", tmp_path / ".link.pub")  # a dotfile: never read
    config = parse_trust_policy(
        {"scopes": {"ops.pub": ["billing-*"]}, "expires": {"dev": "2027-01-01T00:00:00Z"}}
    )
    trust = load_trust_dir(tmp_path, config)
    by_name = {k.name: k for k in trust.keys}
    assert set(by_name) == {"ops", "dev"}
    assert by_name["ops"].public_key == PK and by_name["ops"].scopes == ("billing-*",)
    assert by_name["dev"].public_key == test_key(2).public_key
    assert by_name["dev"].scopes == ("*",)
    assert by_name["ops"].not_after is None and by_name["dev"].not_after == 1798761600.0
    described = by_name["dev"].describe()
    assert described["not_after"] == "2027-01-01T00:00:00Z"
    assert described["public_key"] == test_key(2).public_key.hex()
    assert described["key_id"] == by_name["dev"].key_id.hex() and len(described["key_id"]) == 24
    assert described["fingerprint"].startswith("SHA256:") and len(described["fingerprint"]) == 50


@pytest.mark.parametrize(
    ("files", "config", "message"),
    [
        ({"bad.pub": b"\x01" + bytes(5)}, {}, "bad.pub: not a public key"),
        ({"bad.pem": b"-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----"}, {}, "base64"),
        ({"a.pub": b"\x01" + PK, "b.pem": public_key_pem(PK)}, {}, "duplicates key 'a'"),
        ({"a.pub": b"\x01" + PK}, {"scopes": {"typo": ["x"]}}, "names key 'typo', not found"),
        ({"a.pub": b"\x01" + PK}, {"expires": {"b": "2027-01-01T00:00:00Z"}}, "names key 'b'"),
    ],
)
def test_broken_trust_dir_fails_loudly(
    tmp_path: Path, files: dict[str, bytes], config: dict[str, Any], message: str
) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ConfigError, match=message):
        load_trust_dir(tmp_path, parse_trust_policy(config))


def test_missing_trust_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read trust dir"):
        load_trust_dir(tmp_path / "absent")


def test_thresholds_take_the_strictest_matching_rule() -> None:
    config = parse_trust_policy({"thresholds": {"pay*": 2, "payments": 3}})
    trust = trust_policy_for(test_key(1), thresholds=config.thresholds)
    assert trust.threshold("payments") == 3
    assert trust.threshold("payroll") == 2
    assert trust.threshold("other") == 1
