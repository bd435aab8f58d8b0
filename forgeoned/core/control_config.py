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

Its authorisation keys (``root_is_admin``, ``roles``, ``bindings``, ``rules``) are parsed by
:mod:`forgeoned.core.policy_config` into :attr:`ControlConfig.policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from forgeoned.core.policy import Policy
from forgeoned.core.policy_config import parse_policy
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
    policy = parse_policy(raw)
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
        policy=policy,
    )


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
