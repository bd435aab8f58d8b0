"""A running systemd-journald for the tests that read the journal back.

A running journald is used when there is one (a CI runner, a developer machine); otherwise (a
container as root) the fixture starts ``systemd-journald`` for the test module and stops it
afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from waiting import poll_until, stop_process

SOCKET = "/run/systemd/journal/socket"


def _running() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(SOCKET)
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def journald() -> Iterator[None]:
    if shutil.which("journalctl") is None:
        pytest.skip("journalctl not installed")
    if _running():
        yield
        return
    binary = next(
        (
            p
            for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald")
            if os.path.exists(p)
        ),
        None,
    )
    if binary is None or os.geteuid() != 0:
        pytest.skip("no journald running and cannot start one (needs root and systemd)")
    proc = subprocess.Popen([binary], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll_until(lambda: _running() or proc.poll() is not None, 20, "journald socket")
        if proc.poll() is not None:
            pytest.skip(f"systemd-journald exited with {proc.returncode}")
        yield
    finally:
        stop_process(proc)
