"""Waiting for something bounded without looking hung to the service manager.

Under systemd with ``WatchdogSec=`` the daemon loop must send ``WATCHDOG=1`` at least every
half period, and it only does so between two jobs. A job that waits for something slow but
bounded (a drain of in-flight calls, a plugin's ``init`` or ``start``, a compile) therefore
waits in slices of the :class:`Heartbeat`'s interval and beats between them. Only bounded
waits do this: a loop stuck on something unbounded must still stop beating, so that systemd
notices and restarts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Heartbeat(Protocol):
    """The service manager's watchdog (``Notifier``): ``beat`` says "alive"."""

    @property
    def interval_s(self) -> float | None:
        """The longest a waiter may go without beating (None: no watchdog, never beat)."""
        ...

    def beat(self) -> None: ...


def wait_beating(
    wait: Callable[[float], bool], timeout: float, heartbeat: Heartbeat | None
) -> bool:
    """``wait(seconds)`` (True once the awaited thing happened, False only after ``seconds``
    passed without it) for at most ``timeout`` seconds in all, beating between slices of at
    most the heartbeat's interval (one before the first). The slices add up to ``timeout``:
    no clock needed."""
    interval = heartbeat.interval_s if heartbeat is not None else None
    if heartbeat is None or interval is None or interval <= 0:
        return wait(max(0.0, timeout))
    if wait(0.0):
        return True
    left = max(0.0, timeout)
    while left > 0:
        heartbeat.beat()  # the last beat of the loop may be almost an interval old already
        piece = min(left, interval)
        if wait(piece):
            return True
        left -= piece
    return False
