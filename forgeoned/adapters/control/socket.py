"""The control socket file and its peers: safe creation, stale files, ``SO_PEERCRED``.

The socket is bound under a temporary name next to the final path, given its mode and group,
and only then renamed into place, so no client ever sees it with the wrong permissions (and
no process-wide umask is touched). A leftover socket file nobody listens on is replaced; a
live one, or a path that is not a socket, is refused.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from forgeoned.core.policy import Caller
from forgeoned.errors import ConfigError, StateError

_UCRED = struct.Struct("3i")
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux ≥ 4.13
_MAX_GROUPS = 256


def bind_control_socket(path: str, mode: int, group: str, backlog: int) -> socket.socket:
    """A listening, non-blocking Unix socket at ``path`` with ``mode`` and ``group``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(target)
    gid = _group_id(group) if group else -1
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp))
        tmp.chmod(mode)
        if gid >= 0:
            os.chown(tmp, -1, gid)
        tmp.rename(target)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        tmp.unlink(missing_ok=True)
        raise StateError(f"cannot create control socket {path}: {exc}") from exc
    return sock


def _clear_stale(target: Path) -> None:
    try:
        info = target.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise StateError(f"control socket path {target} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(target))
    except (ConnectionRefusedError, FileNotFoundError):
        target.unlink(missing_ok=True)  # stale: left by a daemon that died
        return
    except OSError as exc:
        raise StateError(f"cannot probe control socket {target}: {exc}") from exc
    finally:
        probe.close()
    raise StateError(f"control socket {target} is in use by another process")


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"control.group: no such group {group!r}") from None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the kernel says about a peer: ``SO_PEERCRED`` plus ``SO_PEERGROUPS``."""

    uid: int
    gid: int
    pid: int
    gids: frozenset[int]


UNKNOWN_PEER = Credentials(uid=-1, gid=-1, pid=0, gids=frozenset())


def credentials(sock: socket.socket) -> Credentials:
    """Two getsockopt calls: cheap and non-blocking."""
    pid, uid, gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    gids = {gid}
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * _MAX_GROUPS)
        gids.update(struct.unpack(f"{len(raw) // 4}I", raw))
    except OSError:
        pass  # an old kernel: the primary group only
    return Credentials(uid=uid, gid=gid, pid=pid, gids=frozenset(gids))


class PeerIdentifier:
    """Turns a connected socket into a :class:`Caller`, caching name look-ups."""

    def __init__(self) -> None:
        self._users: dict[int, str | None] = {}
        self._groups: dict[int, str | None] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget cached names (on reload: the user database may have changed)."""
        with self._lock:
            self._users.clear()
            self._groups.clear()

    def identify(self, sock: socket.socket) -> Caller:
        return self.caller(credentials(sock))

    def cached(self, creds: Credentials) -> Caller | None:
        """Names for ``creds`` if every one is known already (never blocks); else None."""
        with self._lock:
            known = creds.uid in self._users and all(g in self._groups for g in creds.gids)
        return self.caller(creds) if known else None

    def caller(self, creds: Credentials) -> Caller:
        """Names for ``creds``. The first look-up of an id may block (NSS: LDAP, sssd…), so
        the server calls this in a worker thread, never on its event loop."""
        names = {name for name in map(self._group_name, creds.gids) if name is not None}
        return Caller(
            uid=creds.uid,
            gid=creds.gid,
            pid=creds.pid,
            user=self._user_name(creds.uid),
            groups=frozenset(names),
            gids=creds.gids,
        )

    def _user_name(self, uid: int) -> str | None:
        with self._lock:
            if uid not in self._users:
                try:
                    self._users[uid] = pwd.getpwuid(uid).pw_name
                except KeyError:
                    self._users[uid] = None
            return self._users[uid]

    def _group_name(self, gid: int) -> str | None:
        with self._lock:
            if gid not in self._groups:
                try:
                    self._groups[gid] = grp.getgrgid(gid).gr_name
                except KeyError:
                    self._groups[gid] = None
            return self._groups[gid]
