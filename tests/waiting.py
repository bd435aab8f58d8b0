"""Polling, for the state of external processes only.

journald, Prometheus, a daemon in a subprocess or a booted container offer nothing a test can
block on, so their state is polled, with this one bounded loop. Anything in the test's own
process is waited on by its event or condition instead (``threading.Condition.wait_for``, the
daemon kit's ``EventWaiter``, a watcher's report), never polled.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class PollTimeout(AssertionError):
    """What was polled for did not happen in time (fails the test like an assert)."""


def poll_until(
    probe: Callable[[], T | Literal[False] | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    tolerate: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``probe`` every ``interval`` seconds until it returns something truthy, and return
    that. Raises :class:`PollTimeout` naming ``what`` (and the last answer) after ``timeout``
    seconds. An exception in ``tolerate`` (say ``OSError`` while a server starts) counts as
    "not yet"."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a wait that is not a busy loop
    while True:
        try:
            value = probe()
        except tolerate as exc:
            value = None
            last: object = exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise PollTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        pause.wait(interval)


def stop_process(proc: subprocess.Popen[Any], grace: float = 20.0) -> int:
    """Stop an external process the test started: SIGTERM, up to ``grace`` seconds to exit,
    then SIGKILL. Returns its exit status."""
    proc.terminate()
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
