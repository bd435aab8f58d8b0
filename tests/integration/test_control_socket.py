"""The control socket file and peer credentials, on real sockets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from forgeoned.adapters.control.socket import (
    Credentials,
    PeerIdentifier,
    bind_control_socket,
    credentials,
)
from forgeoned.errors import ConfigError


def test_credentials_of_a_peer_are_ours() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        creds = credentials(a)
        assert (creds.uid, creds.gid, creds.pid) == (os.getuid(), os.getgid(), os.getpid())
        assert os.getgid() in creds.gids
        caller = PeerIdentifier().caller(creds)
    assert caller.user == "root" and "root" in caller.groups
    assert caller.actor == "uid=0(root)"


def test_ids_without_names_keep_numbers_only() -> None:
    ghost = Credentials(uid=424242, gid=424242, pid=1, gids=frozenset({424242}))
    caller = PeerIdentifier().caller(ghost)
    assert caller.user is None and caller.groups == frozenset()
    assert caller.actor == "uid=424242"


def test_unknown_group_is_a_config_error_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with pytest.raises(ConfigError, match=r"control\.group: no such group 'no-such-group'"):
        bind_control_socket(str(path), 0o660, "no-such-group", 16)
    assert list(tmp_path.iterdir()) == []


def test_numeric_group_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.sock"
    sock = bind_control_socket(str(path), 0o640, "65534", 16)
    with sock:
        info = path.stat()
        assert (info.st_mode & 0o777, info.st_gid) == (0o640, 65534)
        assert [p.name for p in path.parent.iterdir()] == ["c.sock"]
