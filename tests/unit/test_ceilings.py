"""Operator ceilings: parsing [limits] and checking a manifest or compiled code against them."""

from __future__ import annotations

import pytest

from forgeoned.core.ceilings import (
    CeilingPolicy,
    Ceilings,
    Limit,
    check_code_size,
    check_manifest,
    parse_ceilings,
)
from forgeoned.core.manifest import Limits, Manifest
from forgeoned.errors import ConfigError, LimitExceededError


def manifest(name: str = "billing", **limits: int) -> Manifest:
    return Manifest(name=name, version="1.0.0", limits=Limits(**limits))


def test_no_limits_table_caps_nothing() -> None:
    policy = parse_ceilings(None)
    assert policy == CeilingPolicy() == parse_ceilings({})
    check_manifest(policy, manifest(memory_bytes=1 << 32, instances=64, fuel_per_call=10**12))
    check_code_size(policy, manifest(), 1 << 40)


def test_daemon_wide_and_per_plugin_tables() -> None:
    policy = parse_ceilings(
        {
            "memory_bytes": 1 << 28,
            "instances": 4,
            "plugins": {"billing": {"memory_bytes": 1 << 30}, "tiny": {"instances": 1}},
        }
    )
    assert policy.default == Ceilings(memory_bytes=1 << 28, instances=4)
    # a per-plugin key replaces the daemon-wide one; an unset key falls back to it
    assert policy.ceiling("billing", Limit.MEMORY_BYTES) == (
        1 << 30,
        "limits.plugins.billing.memory_bytes",
    )
    assert policy.ceiling("billing", Limit.INSTANCES) == (4, "limits.instances")
    assert policy.ceiling("tiny", Limit.INSTANCES) == (1, "limits.plugins.tiny.instances")
    assert policy.ceiling("other", Limit.CODE_BYTES) == (None, "limits.code_bytes")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"memory": 1}, "limits.memory: unknown key"),
        ({"memory_bytes": 100}, "limits.memory_bytes: 100 is outside 65536..4294967296"),
        ({"instances": True}, "limits.instances: must be an integer"),
        ({"call_timeout_ms": 0}, "limits.call_timeout_ms: 0 is outside"),
        ({"code_bytes": -1}, "limits.code_bytes: -1 is outside"),
        ({"plugins": {"x": 3}}, "limits.plugins.x: must be a table"),
        ({"plugins": {"x": {"instances": 65}}}, "limits.plugins.x.instances: 65 is outside"),
        ({"plugins": {"UPPER": {}}}, "limits.plugins.UPPER: not a plugin name"),
        ([], "limits: must be a table"),
    ],
)
def test_bad_tables_name_the_key(raw: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        parse_ceilings(raw)


def test_a_manifest_at_the_ceiling_passes_and_above_it_is_refused_naming_everything() -> None:
    policy = parse_ceilings({"memory_bytes": 1 << 20, "call_timeout_ms": 500, "instances": 2})
    check_manifest(policy, manifest(memory_bytes=1 << 20, call_timeout_ms=500, instances=2))
    with pytest.raises(LimitExceededError) as info:
        check_manifest(policy, manifest(memory_bytes=1 << 21, call_timeout_ms=501, instances=2))
    exc = info.value
    assert exc.code == "over_ceiling" and exc.http_status == 422
    assert (exc.plugin, exc.version) == ("billing", "1.0.0")  # the audit event names them
    assert str(exc) == (
        "plugin 'billing': memory_bytes = 2097152 is over the ceiling 1048576 "
        "(limits.memory_bytes); call_timeout_ms = 501 is over the ceiling 500 "
        "(limits.call_timeout_ms)"
    )


def test_a_per_plugin_ceiling_is_named_as_such() -> None:
    policy = parse_ceilings(
        {"fuel_per_call": 10**9, "plugins": {"billing": {"fuel_per_call": 10**6}}}
    )
    check_manifest(policy, manifest("other", fuel_per_call=10**9))
    with pytest.raises(LimitExceededError, match=r"limits\.plugins\.billing\.fuel_per_call"):
        check_manifest(policy, manifest("billing", fuel_per_call=10**6 + 1))


def test_compiled_code_size() -> None:
    policy = parse_ceilings({"code_bytes": 1000})
    check_code_size(policy, manifest(), 1000)
    with pytest.raises(LimitExceededError, match=r"code_bytes = 1001 is over the ceiling 1000"):
        check_code_size(policy, manifest(), 1001)
