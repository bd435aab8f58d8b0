"""Admission of control connections: the hard cap, the cap per uid, the admin-reserved slots."""

from __future__ import annotations

from forgeoned.adapters.control.admission import Admission, Limits
from forgeoned.core.control_config import parse_control_config
from forgeoned.core.policy import Caller

POLICY = parse_control_config(
    {"bindings": [{"group": "ops", "roles": ["admin"]}, {"anyone": True, "roles": ["viewer"]}]}
).policy
ROOT = Caller(uid=0, gid=0, pid=1, user="root")
OPS = Caller(uid=1001, gid=1001, pid=2, user="olga", groups=frozenset({"ops"}))
BOB = Caller(uid=1002, gid=1002, pid=3, user="bob")
EVE = Caller(uid=1003, gid=1003, pid=4, user="eve")


def connect(admission: Admission, caller: Caller) -> str | None:
    refusal = admission.arrive()
    if refusal is not None:
        return refusal
    _admin, refusal = admission.admit(caller)
    return refusal


def test_admins_are_root_and_holders_of_every_action() -> None:
    admission = Admission(Limits(10, 2, 2), POLICY)
    assert admission.is_admin(ROOT) and admission.is_admin(OPS)
    assert not admission.is_admin(BOB)


def test_a_user_without_the_admin_role_holds_at_most_its_share() -> None:
    admission = Admission(Limits(10, 3, 2), POLICY)
    assert [connect(admission, BOB) for _ in range(4)][3] == (
        "too many connections from uid 1002 (max 3)"
    )
    assert connect(admission, EVE) is None  # another uid has its own share
    assert admission.open == 4
    admission.leave(BOB, False)
    assert connect(admission, BOB) is None


def test_the_last_slots_are_kept_for_administrators() -> None:
    admission = Admission(Limits(6, 100, 2), POLICY)
    assert [connect(admission, BOB) for _ in range(4)] == [None] * 4
    assert connect(admission, EVE) == "too many connections (2 kept for administrators)"
    assert connect(admission, ROOT) is None and connect(admission, OPS) is None
    assert connect(admission, ROOT) == "too many connections (max 6)"  # the hard cap: all
    admission.leave(ROOT, True)
    assert connect(admission, EVE) == "too many connections (2 kept for administrators)"
    admission.leave(BOB, False)
    assert connect(admission, EVE) is None


def test_administrators_are_not_held_to_the_per_uid_cap() -> None:
    admission = Admission(Limits(20, 1, 2), POLICY)
    assert [connect(admission, ROOT) for _ in range(5)] == [None] * 5


def test_connections_still_being_identified_count_against_the_hard_cap() -> None:
    admission = Admission(Limits(2, 10, 1), POLICY)
    assert admission.arrive() is None and admission.arrive() is None
    assert admission.arrive() == "too many connections (max 2)"
    admission.leave(None, False)  # one closed before it was identified
    assert admission.open == 1
