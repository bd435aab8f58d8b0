"""The systemd notify protocol: datagrams to ``$NOTIFY_SOCKET`` (sd_notify(3)).

Without ``$NOTIFY_SOCKET`` (not started by systemd as ``Type=notify``) every call is a no-op.
An address starting with ``@`` is in the Linux abstract namespace (a leading NUL byte).
Sending never raises: a daemon must not die because its supervisor went away.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Mapping
from typing import Final

MAX_STATUS: Final = 400


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self._address = address
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.watchdog_usec = _watchdog_usec(env)
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """How often to send WATCHDOG=1 (half of ``$WATCHDOG_USEC``), or None."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if not sent."""
        if self._address is None:
            return False
        payload = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._sock.sendto(payload, self._address)
            except OSError:
                self.failures += 1
                return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={_one_line(status)}", f"MAINPID={os.getpid()}")

    def reloading(self, monotonic_usec: int) -> bool:
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={_one_line(status)}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={_one_line(status)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    # --- as a forgeoned.core.heartbeat.Heartbeat (bounded waits of the loop feed it) ---

    @property
    def interval_s(self) -> float | None:
        return self.watchdog_interval()

    def beat(self) -> None:
        self.watchdog()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()
                self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_STATUS]


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    raw = env.get("WATCHDOG_USEC")
    if not raw or not raw.isdigit() or int(raw) == 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process (e.g. our parent)
    return int(raw)
