"""parse_control_config: defaults, a full table, and a one-line ConfigError per bad value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from forgeoned.core.control_config import DEFAULT_SOCKET, ControlConfig, parse_control_config
from forgeoned.core.policy import Action, SubjectKind
from forgeoned.errors import ConfigError


def test_defaults() -> None:
    cfg = parse_control_config({})
    assert cfg == ControlConfig()
    assert cfg.socket == DEFAULT_SOCKET
    assert cfg.mode == 0o660
    assert cfg.policy.root_is_admin
    assert cfg.policy.grants == ()


def test_full_table() -> None:
    cfg = parse_control_config(
        {
            "socket": "/run/x.sock",
            "group": "forgeoned",
            "mode": "0640",
            "max_connections": 10,
            "max_body_bytes": 1000,
            "max_header_bytes": 2000,
            "read_timeout_s": 2,
            "idle_timeout_s": 3.5,
            "root_is_admin": False,
            "roles": {"auditor": {"actions": ["audit_read", "audit_verify"]}},
            "bindings": [{"name": "sec", "group": "security", "roles": ["auditor"]}],
            "rules": [{"uid": 1000, "actions": ["invoke"], "plugins": ["a-*", "b"]}],
        }
    )
    assert (cfg.socket, cfg.group, cfg.mode) == ("/run/x.sock", "forgeoned", 0o640)
    assert (cfg.max_connections, cfg.max_body_bytes, cfg.max_header_bytes) == (10, 1000, 2000)
    assert (cfg.read_timeout_s, cfg.idle_timeout_s) == (2.0, 3.5)
    sec, rule = cfg.policy.grants
    assert sec.name == "sec" and sec.subject.kind is SubjectKind.GROUP
    assert sec.actions == {Action.AUDIT_READ, Action.AUDIT_VERIFY}
    assert rule.name == "rule:uid=1000" and rule.plugins == ("a-*", "b")
    assert not cfg.policy.root_is_admin


BAD: list[tuple[dict[str, Any], str]] = [
    ({"sockett": "/x"}, "control: unknown key(s) sockett"),
    ({"socket": ""}, "control.socket: expected a non-empty string"),
    ({"mode": "rw-rw----"}, "control.mode: expected permissions"),
    ({"mode": 0o7777}, "control.mode: expected permissions"),
    ({"max_connections": 0}, "control.max_connections: expected a positive integer"),
    ({"max_body_bytes": True}, "control.max_body_bytes: expected a positive integer"),
    ({"workers": 4}, "control: unknown key(s) workers"),
    ({"read_timeout_s": -1}, "control.read_timeout_s: expected a positive number"),
    ({"root_is_admin": "yes"}, "control.root_is_admin: expected true or false"),
    ({"roles": {"admin": {"actions": ["list"]}}}, "redefines a built-in role"),
    ({"roles": {"r": {"actions": ["fly"]}}}, "control.roles.r.actions: unknown action 'fly'"),
    ({"roles": {"r": {"extends": ["s"]}, "s": {"extends": ["r"]}}}, "cycle in extends"),
    ({"roles": {"r": {"extends": ["ghost"]}}}, "unknown role 'ghost'"),
    ({"roles": {"r": {"powers": []}}}, "control.roles.r: unknown key(s) powers"),
    ({"bindings": {"user": "a"}}, "control.bindings: expected an array of tables"),
    ({"bindings": [{"roles": ["viewer"]}]}, "control.bindings[0]: needs exactly one of"),
    ({"bindings": [{"user": "a", "group": "b", "roles": ["viewer"]}]}, "needs exactly one"),
    ({"bindings": [{"user": "a"}]}, "control.bindings[0]: grants no action"),
    ({"bindings": [{"user": "a", "roles": ["boss"]}]}, "unknown role 'boss'"),
    ({"bindings": [{"uid": -1, "roles": ["viewer"]}]}, "uid: expected a non-negative integer"),
    ({"bindings": [{"anyone": False, "roles": ["viewer"]}]}, "anyone: must be true"),
    ({"bindings": [{"user": "a", "roles": ["viewer"], "plugins": ["x"]}]}, "unknown key(s)"),
    ({"rules": [{"user": "a", "roles": ["viewer"]}]}, "needs at least one plugin pattern"),
    (
        {"rules": [{"user": "a", "roles": ["viewer"], "plugins": "x", "effect": "maybe"}]},
        "effect: expected 'allow' or 'deny'",
    ),
    (
        {"rules": [{"user": "a", "actions": "pause", "plugins": [""]}]},
        "plugins: expected a list of non-empty strings",
    ),
    (
        {
            "bindings": [
                {"name": "x", "user": "a", "roles": ["viewer"]},
                {"name": "x", "user": "b", "roles": ["viewer"]},
            ]
        },
        "duplicate rule name(s) x",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad_values_are_one_line_config_errors_and_input_is_untouched(
    raw: dict[str, Any], message: str
) -> None:
    before = copy.deepcopy(raw)
    with pytest.raises(ConfigError) as info:
        parse_control_config(raw)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert raw == before
