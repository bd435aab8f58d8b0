"""The authorisation part of the ``[control]`` table, parsed into a :class:`Policy`.

Keys (all optional; the rest of ``[control]`` is in :mod:`forgeoned.core.control_config`)::

    [control]
    root_is_admin = true       # uid 0 holds every action

    [control.roles.deployer]   # custom roles: a list of actions and/or roles to extend
    actions = ["install", "reload"]
    extends = ["viewer"]

    [[control.bindings]]       # subject → roles, on every plugin
    name = "ops-team"          # optional; names the grant in decisions and audit events
    group = "ops"              # exactly one of: user, uid, group, gid, anyone = true
    roles = ["operator"]

    [[control.rules]]          # attribute rules: subject → roles/actions on plugin globs
    name = "billing-team"
    group = "billing"
    actions = ["pause", "invoke"]   # and/or roles = [...]
    plugins = ["billing-*"]
    effect = "allow"                # or "deny": refuses even what a role would allow
    # optional ABAC conditions (globs; the rule applies only when all hold):
    functions = ["check", "stats"]  # invoke only: the function invoked ("handle" without --fn)
    signers = ["release-*"]         # a key that signed the active version (name or key id)
    labels = { team = "billing" }   # manifest labels (value globs), all must match
    groups = ["oncall"]             # the caller is in at least one of these groups

Built-in roles: ``viewer`` (list, show), ``operator`` (viewer + pause, resume, restart,
invoke, audit_read, audit_verify, compliance_read), ``admin`` (every action).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forgeoned.core.policy import (
    BUILTIN_ROLES,
    Action,
    Conditions,
    Grant,
    Policy,
    Subject,
    SubjectKind,
)
from forgeoned.errors import ConfigError

_SUBJECT_KEYS = ("user", "uid", "group", "gid", "anyone")
_CONDITION_KEYS = ("functions", "signers", "labels", "groups")


def parse_policy(raw: Mapping[str, Any]) -> Policy:
    """Validate the roles, bindings, rules and ``root_is_admin`` of the ``[control]`` table
    (its other keys are not looked at); raise :class:`ConfigError` naming the bad key."""
    roles = _parse_roles(_table(raw.get("roles", {}), "control.roles"))
    grants = [
        _parse_grant(entry, f"control.bindings[{i}]", roles, scoped=False)
        for i, entry in enumerate(_array(raw.get("bindings", []), "control.bindings"))
    ]
    grants += [
        _parse_grant(entry, f"control.rules[{i}]", roles, scoped=True)
        for i, entry in enumerate(_array(raw.get("rules", []), "control.rules"))
    ]
    names = [g.name for g in grants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"control: duplicate rule name(s) {', '.join(duplicates)}")
    root_is_admin = raw.get("root_is_admin", True)
    if not isinstance(root_is_admin, bool):
        raise ConfigError("control.root_is_admin: expected true or false")
    return Policy(grants=tuple(grants), root_is_admin=root_is_admin)


def _parse_roles(raw: Mapping[str, Any]) -> dict[str, frozenset[Action]]:
    roles = dict(BUILTIN_ROLES)
    pending = {name: _table(body, f"control.roles.{name}") for name, body in raw.items()}
    for name in pending:
        if name in BUILTIN_ROLES:
            raise ConfigError(f"control.roles.{name}: redefines a built-in role")
    # resolve `extends` in dependency order; a cycle leaves roles unresolved
    while pending:
        progress = False
        for name, body in list(pending.items()):
            where = f"control.roles.{name}"
            bad = set(body) - {"actions", "extends"}
            if bad:
                raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
            extends = _str_list(body.get("extends", []), f"{where}.extends")
            if any(parent in pending for parent in extends):
                continue
            actions = set(_actions(body.get("actions", []), f"{where}.actions"))
            for parent in extends:
                if parent not in roles:
                    raise ConfigError(f"{where}.extends: unknown role {parent!r}")
                actions |= roles[parent]
            roles[name] = frozenset(actions)
            del pending[name]
            progress = True
        if not progress:
            raise ConfigError(f"control.roles: cycle in extends among {', '.join(pending)}")
    return roles


def _parse_grant(
    raw: Any, where: str, roles: Mapping[str, frozenset[Action]], *, scoped: bool
) -> Grant:
    entry = _table(raw, where)
    allowed = {"name", "roles", "actions", *_SUBJECT_KEYS} | (
        {"plugins", "effect", *_CONDITION_KEYS} if scoped else set()
    )
    bad = set(entry) - allowed
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
    subject_keys = [k for k in _SUBJECT_KEYS if k in entry]
    if len(subject_keys) != 1:
        raise ConfigError(f"{where}: needs exactly one of {', '.join(_SUBJECT_KEYS)}")
    key = subject_keys[0]
    value = entry[key]
    if key == "anyone":
        if value is not True:
            raise ConfigError(f"{where}.anyone: must be true")
        subject = Subject(SubjectKind.ANYONE)
    elif key in ("uid", "gid"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a non-negative integer")
        subject = Subject(SubjectKind(key), str(value))
    else:
        subject = Subject(SubjectKind(key), _nonempty(value, f"{where}.{key}"))
    actions = set(_actions(entry.get("actions", []), f"{where}.actions"))
    for role in _str_list(entry.get("roles", []), f"{where}.roles"):
        if role not in roles:
            raise ConfigError(f"{where}.roles: unknown role {role!r}")
        actions |= roles[role]
    if not actions:
        raise ConfigError(f"{where}: grants no action (give roles or actions)")
    plugins = tuple(_str_list(entry.get("plugins", []), f"{where}.plugins"))
    if scoped and not plugins:
        raise ConfigError(f"{where}.plugins: a rule needs at least one plugin pattern")
    effect = entry.get("effect", "allow")
    if effect not in ("allow", "deny"):
        raise ConfigError(f"{where}.effect: expected 'allow' or 'deny'")
    default_name = f"{'rule' if scoped else 'binding'}:{subject}"
    name = _nonempty(entry.get("name", default_name), f"{where}.name")
    when = _conditions(entry, where)
    return Grant(name, subject, frozenset(actions), plugins, deny=effect == "deny", when=when)


def _conditions(entry: Mapping[str, Any], where: str) -> Conditions:
    labels = _table(entry.get("labels", {}), f"{where}.labels")
    for key, value in labels.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.labels.{key}: expected a non-empty string (a glob)")
    return Conditions(
        functions=tuple(_str_list(entry.get("functions", []), f"{where}.functions")),
        signers=tuple(_str_list(entry.get("signers", []), f"{where}.signers")),
        labels=tuple(sorted(labels.items())),
        groups=tuple(_str_list(entry.get("groups", []), f"{where}.groups")),
    )


def _actions(raw: Any, where: str) -> list[Action]:
    out = []
    for item in _str_list(raw, where):
        try:
            out.append(Action(item))
        except ValueError:
            known = ", ".join(a.value for a in Action)
            raise ConfigError(f"{where}: unknown action {item!r} (known: {known})") from None
    return out


def _table(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table")
    return raw


def _array(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected an array of tables")
    return raw


def _str_list(raw: Any, where: str) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ConfigError(f"{where}: expected a list of non-empty strings")
    return list(raw)


def _nonempty(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{where}: expected a non-empty string")
    return raw
