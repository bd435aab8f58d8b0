"""The ``[control]`` table of the daemon config: socket, limits and authorisation.

Keys (all optional; defaults in brackets)::

    [control]
    socket = "/run/forgeoned/control.sock"   # Unix socket path
    group = "forgeoned"        # group owning the socket [""] = the daemon's own group
    mode = "0660"              # socket permissions, octal string or integer [0660]
    max_connections = 256      # concurrent connections; more get 503 and are closed
    max_connections_per_uid = 64     # per caller uid, for callers without the admin role
    admin_reserved_connections = 8   # of max_connections, kept for callers holding every
                                     # action (admin role, or root): PostgreSQL-style
    max_body_bytes = 67108864  # install upload cap [64 MiB]
    max_invoke_bytes = 67108864      # invoke input cap [64 MiB]
    max_json_bytes = 65536     # body cap of every other request [64 KiB]
    max_header_bytes = 16384   # request line + headers cap [16 KiB]
    read_timeout_s = 10.0      # a request must arrive whole within this (slow-loris guard)
    idle_timeout_s = 60.0      # a keep-alive connection idle this long is closed
    follow_calls_buffer = 4096 # live call records held per ``audit follow --calls`` follower
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
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.policy import (
    BUILTIN_ROLES,
    Action,
    Conditions,
    Grant,
    Policy,
    Subject,
    SubjectKind,
)
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.errors import ConfigError

DEFAULT_SOCKET = "/run/forgeoned/control.sock"
# The default body cap: an install carries a whole module. forgeonectl refuses an invoke input
# over it before sending (the daemon would answer 413 body_too_large).
MAX_BODY_BYTES: Final = MAX_MODULE_BYTES
_TOP_KEYS = frozenset(
    {
        "socket",
        "group",
        "mode",
        "max_connections",
        "max_connections_per_uid",
        "admin_reserved_connections",
        "max_body_bytes",
        "max_invoke_bytes",
        "max_json_bytes",
        "max_header_bytes",
        "read_timeout_s",
        "idle_timeout_s",
        "follow_calls_buffer",
        "root_is_admin",
        "roles",
        "bindings",
        "rules",
    }
)
_SUBJECT_KEYS = ("user", "uid", "group", "gid", "anyone")
_CONDITION_KEYS = ("functions", "signers", "labels", "groups")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """Everything the control server needs, validated."""

    socket: str = DEFAULT_SOCKET
    group: str = ""
    mode: int = 0o660
    max_connections: int = 256
    max_connections_per_uid: int = 64
    admin_reserved_connections: int = 8
    max_body_bytes: int = MAX_BODY_BYTES
    max_invoke_bytes: int = MAX_BODY_BYTES
    max_json_bytes: int = 64 * 1024
    max_header_bytes: int = 16 * 1024
    read_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    follow_calls_buffer: int = 4096
    # Who may do what: a reload applies it at once (the daemon's config marks it live); the
    # other keys take effect on a restart.
    policy: Policy = field(default_factory=Policy, metadata={"live": True})


def parse_control_config(raw: Mapping[str, Any]) -> ControlConfig:
    """Validate the ``[control]`` table; raise :class:`ConfigError` naming the bad key."""
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"control: unknown key(s) {', '.join(sorted(unknown))}")
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
    d = ControlConfig()
    max_connections = _positive_int(
        raw.get("max_connections", d.max_connections), "max_connections"
    )
    reserved = raw.get(
        "admin_reserved_connections", min(d.admin_reserved_connections, max_connections - 1)
    )
    if isinstance(reserved, bool) or not isinstance(reserved, int) or reserved < 0:
        raise ConfigError(
            f"control.admin_reserved_connections: expected 0 or more, got {reserved!r}"
        )
    if reserved >= max_connections:
        raise ConfigError(
            "control.admin_reserved_connections must be below max_connections "
            f"({reserved} >= {max_connections})"
        )
    return ControlConfig(
        socket=_string(raw.get("socket", d.socket), "control.socket", allow_empty=False),
        group=_string(raw.get("group", d.group), "control.group"),
        mode=_mode(raw.get("mode", d.mode)),
        max_connections=max_connections,
        max_connections_per_uid=_positive_int(
            raw.get("max_connections_per_uid", d.max_connections_per_uid),
            "max_connections_per_uid",
        ),
        admin_reserved_connections=reserved,
        max_body_bytes=_positive_int(raw.get("max_body_bytes", d.max_body_bytes), "max_body_bytes"),
        max_invoke_bytes=_positive_int(
            raw.get("max_invoke_bytes", d.max_invoke_bytes), "max_invoke_bytes"
        ),
        max_json_bytes=_positive_int(raw.get("max_json_bytes", d.max_json_bytes), "max_json_bytes"),
        max_header_bytes=_positive_int(
            raw.get("max_header_bytes", d.max_header_bytes), "max_header_bytes"
        ),
        read_timeout_s=_positive_float(
            raw.get("read_timeout_s", d.read_timeout_s), "read_timeout_s"
        ),
        idle_timeout_s=_positive_float(
            raw.get("idle_timeout_s", d.idle_timeout_s), "idle_timeout_s"
        ),
        follow_calls_buffer=_positive_int(
            raw.get("follow_calls_buffer", d.follow_calls_buffer), "follow_calls_buffer"
        ),
        policy=Policy(grants=tuple(grants), root_is_admin=root_is_admin),
    )


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
        subject = Subject(SubjectKind(key), _string(value, f"{where}.{key}", allow_empty=False))
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
    name = _string(entry.get("name", default_name), f"{where}.name", allow_empty=False)
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


def _string(raw: Any, where: str, *, allow_empty: bool = True) -> str:
    if not isinstance(raw, str) or (not allow_empty and not raw):
        raise ConfigError(f"{where}: expected a {'' if allow_empty else 'non-empty '}string")
    return raw


def _mode(raw: Any) -> int:
    try:
        mode = int(raw, 8) if isinstance(raw, str) else raw
    except ValueError:
        mode = None
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise ConfigError(f'control.mode: expected permissions like "0660", got {raw!r}')
    return mode


def _positive_int(raw: Any, key: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise ConfigError(f"control.{key}: expected a positive integer, got {raw!r}")
    return raw


def _positive_float(raw: Any, key: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise ConfigError(f"control.{key}: expected a positive number, got {raw!r}")
    return float(raw)
