"""Who may hold a connection: a hard cap, a cap per uid, and slots kept for administrators.

Like PostgreSQL's ``superuser_reserved_connections``: of ``max_connections`` slots, the last
``admin_reserved_connections`` are only for callers holding the admin role (every action;
root while ``root_is_admin``), and a caller without it holds at most
``max_connections_per_uid`` at once. So neither one local user nor many can lock an
administrator out; only the hard cap applies to administrators.

Admission has two steps because a caller's roles may depend on its user and group *names*,
and looking a name up may block (NSS: LDAP, sssd): :meth:`Admission.arrive` counts a new
connection against the hard cap at once (uid known from ``SO_PEERCRED``), then
:meth:`Admission.admit` decides, once the caller is known, whether it may stay. Every method
runs on the server's event loop thread.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from forgeoned.core.policy import Action, Caller, Policy


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int
    per_uid: int
    admin_reserved: int


class Admission:
    def __init__(self, limits: Limits, policy: Policy) -> None:
        self.limits = limits
        self.policy = policy
        self.open = 0  # every connection, admitted or still being identified
        self._others = 0  # admitted callers without the admin role
        self._per_uid: Counter[int] = Counter()  # the same, by uid
        self._admins: dict[tuple[int, int, frozenset[int]], bool] = {}

    def arrive(self) -> str | None:
        """Count a new connection; the refusal's message if the server is full."""
        if self.open >= self.limits.max_connections:
            return f"too many connections (max {self.limits.max_connections})"
        self.open += 1
        return None

    def admit(self, caller: Caller) -> tuple[bool, str | None]:
        """(admin, refusal): whether ``caller`` (already counted by :meth:`arrive`) may stay.
        A refused connection is no longer counted."""
        admin = self.is_admin(caller)
        if admin:
            return True, None
        lim = self.limits
        others = lim.max_connections - lim.admin_reserved
        refusal = None
        if self._others >= others:
            refusal = f"too many connections ({lim.admin_reserved} kept for administrators)"
        elif self._per_uid[caller.uid] >= lim.per_uid:
            refusal = f"too many connections from uid {caller.uid} (max {lim.per_uid})"
        if refusal is not None:
            self.open -= 1
            return False, refusal
        self._others += 1
        self._per_uid[caller.uid] += 1
        return False, None

    def leave(self, caller: Caller | None, admin: bool) -> None:
        """A connection counted by :meth:`arrive` (and, given ``caller``, admitted) closed."""
        self.open -= 1
        if caller is None or admin:
            return
        self._others -= 1
        self._per_uid[caller.uid] -= 1
        if not self._per_uid[caller.uid]:
            del self._per_uid[caller.uid]

    def is_admin(self, caller: Caller) -> bool:
        """Whether ``caller`` may do every action on every plugin (cached per identity)."""
        key = (caller.uid, caller.gid, caller.gids)
        admin = self._admins.get(key)
        if admin is None:
            admin = all(self.policy.authorize(caller, action).allowed for action in Action)
            if len(self._admins) > 4096:  # bounded: identities are few, but never trust that
                self._admins.clear()
            self._admins[key] = admin
        return admin

    def forget_roles(self) -> None:
        """Group membership may have changed (a reload): decide admin roles afresh."""
        self._admins.clear()
