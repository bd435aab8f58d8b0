"""Who may do what through the control API: roles (RBAC) narrowed by attributes (ABAC).

The caller is a :class:`Caller` (uid, gid, pid and the names the adapter resolved for them).
A *grant* ties a subject (a user or a group, by name or number, or everybody) to a set of
actions, optionally narrowed to plugin-name globs. Grants come from three places, in the order
they are checked:

1. ``deny`` rules: a matching deny rule refuses the request whatever else would allow it;
2. root (uid 0) is admin through the built-in ``root-admin`` grant unless the config says
   ``root_is_admin = false``;
3. bindings (subject → roles, every plugin) and rules (subject → roles or actions, restricted
   to plugin globs), in config order; the first grant that covers the action *and* the plugin
   allows it.

A rule may also carry *conditions* (ABAC, :class:`Conditions`) on the request's
:class:`Target`: the invoked function, the keys that signed the plugin's active version,
the labels its manifest declares, and the caller's groups. A rule applies only when every
condition it has holds; an attribute the request does not have (no function outside
``invoke``, no signer for an unknown plugin) never satisfies a condition on it. Deny rules
are still checked first.

Anything not allowed is refused by ``default-deny``; unknown callers hold no grant at all.
Actions that concern no single plugin (``list``, ``install``, ``reload``, the audit log) are
only granted by an unscoped grant (or one whose globs include ``*``), except ``list``: a
scoped grant lets its holder list the plugins it covers (the server filters the list with
:meth:`Policy.authorize`).
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class Action(enum.Enum):
    """Every operation the control API offers."""

    LIST = "list"
    SHOW = "show"
    INSTALL = "install"
    REMOVE = "remove"
    PAUSE = "pause"
    RESUME = "resume"
    RESTART = "restart"
    RESET = "reset"
    RETRY = "retry"
    ALLOW_DOWNGRADE = "allow_downgrade"
    INVOKE = "invoke"
    RELOAD = "reload"
    AUDIT_READ = "audit_read"
    AUDIT_VERIFY = "audit_verify"
    COMPLIANCE_READ = "compliance_read"
    AUDIT_ACCEPT_GAP = "audit_accept_gap"  # admin: accept an audit.gap (re-anchor the log)
    AUDIT_ROTATE_KEY = "audit_rotate_key"  # admin: hand the checkpoint key over to a new one
    REVIEW = "review"  # record that a plugin was reviewed (plugin.reviewed)
    PULL = "pull"  # sync an OCI source now

    @property
    def changes_state(self) -> bool:
        """True for actions that change the daemon and are therefore audited when allowed."""
        return self in _STATE_CHANGING


_STATE_CHANGING = frozenset(
    {
        Action.INSTALL,
        Action.REMOVE,
        Action.PAUSE,
        Action.RESUME,
        Action.RESTART,
        Action.RESET,
        Action.RETRY,
        Action.ALLOW_DOWNGRADE,
        Action.RELOAD,
        Action.AUDIT_ACCEPT_GAP,
        Action.AUDIT_ROTATE_KEY,
        Action.REVIEW,
        Action.PULL,
    }
)

_VIEWER = frozenset({Action.LIST, Action.SHOW})
_OPERATOR = _VIEWER | {
    Action.PAUSE,
    Action.RESUME,
    Action.RESTART,
    Action.RETRY,
    Action.INVOKE,
    Action.AUDIT_READ,
    Action.AUDIT_VERIFY,
    Action.COMPLIANCE_READ,
    Action.REVIEW,
    Action.PULL,
}
BUILTIN_ROLES: Mapping[str, frozenset[Action]] = {
    "viewer": _VIEWER,
    "operator": frozenset(_OPERATOR),
    "admin": frozenset(Action),
}


class SubjectKind(enum.Enum):
    USER = "user"
    UID = "uid"
    GROUP = "group"
    GID = "gid"
    ANYONE = "anyone"


@dataclass(frozen=True, slots=True)
class Caller:
    """A peer of the control socket, as ``SO_PEERCRED`` reported it."""

    uid: int
    gid: int
    pid: int
    user: str | None = None
    groups: frozenset[str] = frozenset()
    gids: frozenset[int] = frozenset()
    # How the audit log names the caller, e.g. ``uid=1000(alice)``: made once, as every
    # invoke's call record needs it.
    actor: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        actor = f"uid={self.uid}({self.user})" if self.user else f"uid={self.uid}"
        object.__setattr__(self, "actor", actor)


@dataclass(frozen=True, slots=True)
class Subject:
    kind: SubjectKind
    value: str = ""

    def matches(self, caller: Caller) -> bool:
        kind = self.kind
        if kind is SubjectKind.ANYONE:
            return True
        if kind is SubjectKind.USER:
            return caller.user == self.value
        if kind is SubjectKind.UID:
            return str(caller.uid) == self.value
        if kind is SubjectKind.GROUP:
            return self.value in caller.groups
        return self.value == str(caller.gid) or int(self.value) in caller.gids

    def __str__(self) -> str:
        return "*" if self.kind is SubjectKind.ANYONE else f"{self.kind.value}={self.value}"


@dataclass(frozen=True, slots=True)
class Target:
    """What a per-plugin request is about, for rule conditions: ``function`` (invoke only:
    ``handle`` or the named function), the names and key ids of the keys that signed the
    plugin's active version, and its manifest labels."""

    function: str | None = None
    signers: frozenset[str] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()


NO_TARGET = Target()


def _any(patterns: tuple[str, ...], values: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(v, p) for v in values for p in patterns)


@dataclass(frozen=True, slots=True)
class Conditions:
    """ABAC conditions of a rule (globs); an empty one is no condition."""

    functions: tuple[str, ...] = ()
    signers: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # (label, value glob): all must hold
    groups: tuple[str, ...] = ()  # the caller is in at least one

    def hold(self, caller: Caller, target: Target) -> bool:
        if self.functions and (
            target.function is None or not _any(self.functions, (target.function,))
        ):
            return False
        if self.signers and not _any(self.signers, target.signers):
            return False
        if self.groups and not (set(self.groups) & caller.groups):
            return False
        have = dict(target.labels)
        return all(
            k in have and fnmatch.fnmatchcase(have[k], pattern) for k, pattern in self.labels
        )

    def __bool__(self) -> bool:
        return bool(self.functions or self.signers or self.labels or self.groups)


@dataclass(frozen=True, slots=True)
class Grant:
    """One binding or rule after parsing: ``subject`` may do ``actions`` on ``plugins``."""

    name: str
    subject: Subject
    actions: frozenset[Action]
    plugins: tuple[str, ...] = ()  # globs; empty or "*" = every plugin and plugin-less actions
    deny: bool = False
    when: Conditions = Conditions()

    def applies(self, caller: Caller, target: Target) -> bool:
        return self.subject.matches(caller) and (not self.when or self.when.hold(caller, target))

    def covers(self, action: Action, plugin: str | None) -> bool:
        if action not in self.actions:
            return False
        if not self.plugins or "*" in self.plugins:
            return True  # "*" is every plugin and the plugin-less actions too
        if plugin is None:
            # a scoped grant only lets its holder list (the list is then filtered)
            return action is Action.LIST and not self.deny
        return any(fnmatch.fnmatchcase(plugin, pattern) for pattern in self.plugins)


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict: ``rule`` names the grant that allowed or the rule that denied."""

    allowed: bool
    rule: str
    message: str = ""


ROOT_ADMIN = Grant("root-admin", Subject(SubjectKind.UID, "0"), frozenset(Action))


@dataclass(frozen=True, slots=True)
class Policy:
    """The evaluated ``[control]`` authorisation config (see ``policy_config.parse_policy``)."""

    grants: tuple[Grant, ...] = ()
    root_is_admin: bool = True

    def authorize(
        self,
        caller: Caller,
        action: Action,
        plugin: str | None = None,
        about: Target = NO_TARGET,
    ) -> Decision:
        """``about``: the request's attributes for rule conditions (see :class:`Target`)."""
        target = f" on plugin {plugin!r}" if plugin is not None else ""
        if about.function is not None and about.function != "handle":
            target += f" function {about.function!r}"
        for grant in self.grants:
            if grant.deny and grant.covers(action, plugin) and grant.applies(caller, about):
                return Decision(False, grant.name, f"{caller.actor} may not {action.value}{target}")
        if self.root_is_admin and caller.uid == 0:
            return Decision(True, ROOT_ADMIN.name)
        held = False
        for grant in self.grants:
            if grant.deny or not grant.subject.matches(caller):
                continue
            held = True
            if grant.covers(action, plugin) and (not grant.when or grant.when.hold(caller, about)):
                return Decision(True, grant.name)
        why = "holds no role" if not held else "holds no role allowing it"
        return Decision(
            False, "default-deny", f"{caller.actor} may not {action.value}{target}: {why}"
        )
