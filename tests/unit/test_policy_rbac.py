"""RBAC/ABAC decisions: built-in roles, bindings, plugin-glob rules, deny rules, root."""

from __future__ import annotations

import pytest

from forgeoned.core.control_config import parse_control_config
from forgeoned.core.policy import BUILTIN_ROLES, Action, Caller, Policy

ALICE = Caller(uid=1000, gid=1000, pid=10, user="alice", groups=frozenset({"alice", "ops"}))
BOB = Caller(
    uid=1001,
    gid=1001,
    pid=11,
    user="bob",
    groups=frozenset({"bob", "billing"}),
    gids=frozenset({1001, 2000}),
)
NOBODY = Caller(uid=65534, gid=65534, pid=12, user="nobody", groups=frozenset({"nogroup"}))
ROOT = Caller(uid=0, gid=0, pid=1, user="root", groups=frozenset({"root"}))


def policy(**raw: object) -> Policy:
    return parse_control_config(raw).policy


def test_root_is_admin_by_default_and_can_do_everything() -> None:
    p = Policy()
    for action in Action:
        decision = p.authorize(ROOT, action, "anything")
        assert decision.allowed and decision.rule == "root-admin"


def test_root_is_not_admin_when_configured_off() -> None:
    p = policy(root_is_admin=False)
    decision = p.authorize(ROOT, Action.REMOVE, "hello")
    assert not decision.allowed
    assert decision.rule == "default-deny"
    assert "uid=0(root) may not remove on plugin 'hello'" in decision.message


def test_unknown_caller_has_no_role_for_any_action() -> None:
    p = policy(bindings=[{"user": "alice", "roles": ["admin"]}])
    for action in Action:
        decision = p.authorize(NOBODY, action, "hello")
        assert not decision.allowed
        assert decision.rule == "default-deny"
        assert "holds no role" in decision.message


def test_builtin_roles_are_nested() -> None:
    assert BUILTIN_ROLES["viewer"] < BUILTIN_ROLES["operator"] < BUILTIN_ROLES["admin"]
    assert Action.INVOKE in BUILTIN_ROLES["operator"]
    assert Action.INSTALL not in BUILTIN_ROLES["operator"]
    assert Action.RESET not in BUILTIN_ROLES["operator"]


def test_viewer_binding_by_user_allows_reads_only() -> None:
    p = policy(bindings=[{"name": "alice-view", "user": "alice", "roles": ["viewer"]}])
    assert p.authorize(ALICE, Action.LIST).allowed
    show = p.authorize(ALICE, Action.SHOW, "hello")
    assert show.allowed and show.rule == "alice-view"
    pause = p.authorize(ALICE, Action.PAUSE, "hello")
    assert not pause.allowed and pause.rule == "default-deny"
    assert "no role allowing it" in pause.message


@pytest.mark.parametrize(
    "subject",
    [{"user": "alice"}, {"uid": 1000}, {"group": "ops"}, {"gid": 1000}, {"anyone": True}],
)
def test_every_subject_kind_matches(subject: dict[str, object]) -> None:
    p = policy(bindings=[{**subject, "roles": ["operator"]}])
    assert p.authorize(ALICE, Action.INVOKE, "x").allowed


def test_supplementary_gid_matches() -> None:
    p = policy(bindings=[{"gid": 2000, "roles": ["viewer"]}])
    assert p.authorize(BOB, Action.SHOW, "x").allowed
    assert not p.authorize(ALICE, Action.SHOW, "x").allowed


def test_group_rule_narrows_actions_to_plugin_glob() -> None:
    p = policy(
        rules=[
            {
                "name": "billing-team",
                "group": "billing",
                "actions": ["pause", "invoke"],
                "plugins": ["billing-*"],
            }
        ]
    )
    ok = p.authorize(BOB, Action.PAUSE, "billing-eu")
    assert ok.allowed and ok.rule == "billing-team"
    assert p.authorize(BOB, Action.INVOKE, "billing-eu").allowed
    other = p.authorize(BOB, Action.PAUSE, "hello")
    assert not other.allowed and other.rule == "default-deny"
    assert not p.authorize(BOB, Action.REMOVE, "billing-eu").allowed
    # a scoped rule never grants plugin-less actions such as reload or install
    assert not p.authorize(BOB, Action.RELOAD).allowed
    assert not p.authorize(BOB, Action.INSTALL).allowed


def test_scoped_list_is_allowed_and_then_filtered_per_plugin() -> None:
    p = policy(rules=[{"group": "billing", "roles": ["viewer"], "plugins": ["billing-*"]}])
    assert p.authorize(BOB, Action.LIST).allowed
    assert p.authorize(BOB, Action.LIST, "billing-a").allowed
    assert not p.authorize(BOB, Action.LIST, "hello").allowed


def test_deny_rule_wins_over_roles_and_root() -> None:
    p = policy(
        bindings=[{"group": "ops", "roles": ["admin"]}],
        rules=[
            {
                "name": "no-touch-core",
                "anyone": True,
                "actions": ["remove", "pause"],
                "plugins": ["core-*"],
                "effect": "deny",
            }
        ],
    )
    denied = p.authorize(ALICE, Action.REMOVE, "core-auth")
    assert not denied.allowed and denied.rule == "no-touch-core"
    assert not p.authorize(ROOT, Action.PAUSE, "core-auth").allowed
    assert p.authorize(ALICE, Action.REMOVE, "hello").allowed
    assert p.authorize(ALICE, Action.INVOKE, "core-auth").allowed


def test_custom_role_extends_a_builtin() -> None:
    p = policy(
        roles={"deployer": {"actions": ["install", "reload"], "extends": ["viewer"]}},
        bindings=[{"user": "alice", "roles": ["deployer"]}],
    )
    for action in (Action.INSTALL, Action.RELOAD, Action.LIST):
        assert p.authorize(ALICE, action).allowed
    assert not p.authorize(ALICE, Action.REMOVE, "x").allowed


def test_first_matching_grant_names_the_decision() -> None:
    p = policy(
        bindings=[
            {"name": "first", "user": "alice", "roles": ["viewer"]},
            {"name": "second", "group": "ops", "roles": ["operator"]},
        ]
    )
    assert p.authorize(ALICE, Action.SHOW, "x").rule == "first"
    assert p.authorize(ALICE, Action.PAUSE, "x").rule == "second"


def test_actor_names_uid_and_user() -> None:
    assert ALICE.actor == "uid=1000(alice)"
    assert Caller(uid=4242, gid=1, pid=1).actor == "uid=4242"


def test_only_state_changing_actions_are_marked() -> None:
    changing = {a for a in Action if a.changes_state}
    assert Action.INVOKE not in changing and Action.LIST not in changing
    assert {Action.INSTALL, Action.REMOVE, Action.PAUSE, Action.RELOAD} <= changing


def test_star_rule_also_covers_plugin_less_actions() -> None:
    p = policy(
        bindings=[{"group": "ops", "roles": ["admin"]}],
        rules=[
            {
                "name": "no-reload",
                "user": "alice",
                "actions": ["reload"],
                "plugins": ["*"],
                "effect": "deny",
            }
        ],
    )
    denied = p.authorize(ALICE, Action.RELOAD)
    assert not denied.allowed and denied.rule == "no-reload"
    assert p.authorize(ALICE, Action.INSTALL).allowed
