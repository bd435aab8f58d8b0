"""ABAC rule conditions: the invoked function, the signer, manifest labels, caller groups."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from forgeoned.core.control_config import parse_control_config
from forgeoned.core.policy import Action, Caller, Policy, Target
from forgeoned.errors import ConfigError

BOB = Caller(uid=1001, gid=1001, pid=11, user="bob", groups=frozenset({"bob", "edge"}))
EVE = Caller(uid=1002, gid=1002, pid=12, user="eve", groups=frozenset({"eve"}))
EDGE = Target("check", frozenset({"release", "ab12"}), (("team", "edge"), ("tier", "gold")))


def policy(*rules: dict[str, object]) -> Policy:
    return parse_control_config({"rules": list(rules)}).policy


def rule(**extra: object) -> dict[str, object]:
    return {"anyone": True, "actions": ["invoke"], "plugins": ["*"], **extra}


def test_function_condition_names_the_functions_invoke_may_call() -> None:
    p = policy(rule(name="checks", functions=["check", "stat*"]))
    assert p.authorize(BOB, Action.INVOKE, "edge", EDGE).rule == "checks"
    assert p.authorize(BOB, Action.INVOKE, "edge", Target("stats")).allowed
    refused = p.authorize(BOB, Action.INVOKE, "edge", Target("handle"))
    assert not refused.allowed and refused.rule == "default-deny"
    assert not p.authorize(BOB, Action.INVOKE, "edge", Target("purge")).allowed
    assert "function 'purge'" in p.authorize(BOB, Action.INVOKE, "edge", Target("purge")).message
    # no function outside invoke: the condition never holds
    assert (
        not policy(rule(actions=["show"], functions=["*"]))
        .authorize(BOB, Action.SHOW, "edge", Target())
        .allowed
    )


def test_signer_condition_matches_key_name_or_key_id() -> None:
    assert policy(rule(signers=["rel*"])).authorize(BOB, Action.INVOKE, "edge", EDGE).allowed
    assert policy(rule(signers=["ab12"])).authorize(BOB, Action.INVOKE, "edge", EDGE).allowed
    assert not policy(rule(signers=["dev"])).authorize(BOB, Action.INVOKE, "edge", EDGE).allowed
    # an unknown plugin has no signer: never matched
    assert not policy(rule(signers=["*"])).authorize(BOB, Action.INVOKE, "x", Target()).allowed


def test_label_conditions_must_all_hold() -> None:
    both = policy(rule(labels={"team": "edge", "tier": "g*"}))
    assert both.authorize(BOB, Action.INVOKE, "edge", EDGE).allowed
    other = policy(rule(labels={"team": "edge", "tier": "silver"}))
    assert not other.authorize(BOB, Action.INVOKE, "edge", EDGE).allowed
    missing = policy(rule(labels={"region": "*"}))
    assert not missing.authorize(BOB, Action.INVOKE, "edge", EDGE).allowed


def test_group_condition_narrows_the_subject() -> None:
    p = policy(rule(groups=["edge", "oncall"]))
    assert p.authorize(BOB, Action.INVOKE, "edge", EDGE).allowed
    assert not p.authorize(EVE, Action.INVOKE, "edge", EDGE).allowed


def test_deny_rule_with_conditions_is_checked_first() -> None:
    p = policy(
        {"name": "ops", "anyone": True, "roles": ["operator"], "plugins": ["*"]},
        rule(name="no-purge", functions=["purge"], labels={"tier": "gold"}, effect="deny"),
    )
    purge = Target("purge", EDGE.signers, EDGE.labels)
    denied = p.authorize(BOB, Action.INVOKE, "edge", purge)
    assert (denied.allowed, denied.rule) == (False, "no-purge")
    assert p.authorize(BOB, Action.INVOKE, "edge", EDGE).rule == "ops"  # check: allowed
    silver = Target("purge", EDGE.signers, (("tier", "silver"),))
    assert p.authorize(BOB, Action.INVOKE, "edge", silver).rule == "ops"  # deny does not hold


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"functions": "check"}, None),  # a single string is a one-item list
        ({"functions": [1]}, "functions: expected a list of non-empty strings"),
        ({"labels": {"team": 3}}, "labels.team: expected a non-empty string"),
        ({"labels": ["team"]}, "labels: expected a table"),
        ({"groups": [""]}, "groups: expected a list of non-empty strings"),
    ],
)
def test_condition_config_is_checked(extra: dict[str, object], message: str | None) -> None:
    if message is None:
        policy(rule(**extra))
        return
    with pytest.raises(ConfigError, match=message):
        policy(rule(**extra))


def test_bindings_take_no_conditions() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse_control_config({"bindings": [{"anyone": True, "roles": ["viewer"], "labels": {}}]})


def _documented_rules() -> Policy:
    """The ABAC example of docs/forgeonectl.md, as written."""
    text = (Path(__file__).resolve().parents[2] / "docs/forgeonectl.md").read_text()
    block = text.split("**Attribute conditions (ABAC).**", 1)[1]
    toml = block.split("```toml\n", 1)[1].split("```", 1)[0]
    return parse_control_config(tomllib.loads(toml)["control"]).policy


def test_the_documented_example_decides_as_its_comments_say() -> None:
    p = _documented_rules()
    member = Caller(uid=1003, gid=1003, pid=13, user="carol", groups=frozenset({"edge"}))
    on_call = Caller(uid=1004, gid=1004, pid=14, user="dave", groups=frozenset({"oncall"}))
    bob = Caller(uid=1001, gid=1001, pid=11, user="bob", groups=frozenset({"oncall", "edge"}))
    edge = (frozenset({"release"}), (("team", "edge"),))
    assert p.authorize(member, Action.INVOKE, "e", Target("check", *edge)).rule == "edge-checks"
    assert p.authorize(member, Action.INVOKE, "e", Target("stats", *edge)).rule == "edge-checks"
    for target in (
        Target("handle", *edge),  # not one of the functions
        Target("check", frozenset({"dev"}), edge[1]),  # another signer
        Target("check", edge[0], (("team", "core"),)),  # another team
    ):
        assert p.authorize(member, Action.INVOKE, "e", target).rule == "default-deny"
    assert p.authorize(member, Action.SHOW, "e", Target(None, *edge)).rule == "edge-view"
    assert not p.authorize(member, Action.SHOW, "e", Target(None, edge[0], ())).allowed
    purge = Target("purge", *edge)
    assert p.authorize(on_call, Action.INVOKE, "e", purge).rule == "purge-oncall"
    assert p.authorize(member, Action.INVOKE, "e", purge).rule == "default-deny"
    denied = p.authorize(bob, Action.INVOKE, "e", purge)  # on call, but the deny rule is first
    assert (denied.allowed, denied.rule) == (False, "no-purge-off-call")
