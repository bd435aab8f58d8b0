"""Run an attack as an unprivileged local user: a forked child drops to nobody:nogroup (no
supplementary groups), does its work, reports, and keeps everything it opened until the test
lets it go (an attack keeps its sockets in :data:`HELD`)."""

from __future__ import annotations

import json
import os
import select
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NOBODY = 65534
BOUND = 10.0
HELD: list[socket.socket] = []  # in the child: what the attack holds open until released


@contextmanager
def shared_tmp() -> Iterator[Path]:
    """A directory nobody can traverse (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="forgeoned-nobody-") as tmp:
        Path(tmp).chmod(0o755)
        yield Path(tmp)


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)  # blocking: waits in the listen backlog like any real client
    sock.settimeout(BOUND)
    return sock


def status_of(sock: socket.socket) -> int:
    """The status of the next answer on ``sock`` (reads its head only)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            return 0
        data += chunk
    return int(data.split()[1])


@contextmanager
def as_nobody(attack: Callable[[], Any], timeout: float = 60.0) -> Iterator[Any]:
    """Fork; the child becomes nobody, runs ``attack`` and reports what it returned (JSON),
    then holds whatever it opened until the ``with`` block ends."""
    report_r, report_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(report_r)
            os.close(release_w)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = json.dumps({"report": attack()})
        except BaseException as exc:
            out, code = json.dumps({"child_error": repr(exc)}), 1
        os.write(report_w, out.encode() + b"\n")
        os.close(report_w)
        select.select([release_r], [], [], timeout)  # EOF when the test is done
        os._exit(code)
    os.close(report_w)
    os.close(release_r)
    try:
        with os.fdopen(report_r) as pipe:
            ready, _, _ = select.select([pipe], [], [], timeout)
            assert ready, "the child did not report"
            result = json.loads(pipe.readline())
        assert "report" in result, result
        yield result["report"]
    finally:
        os.close(release_w)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
