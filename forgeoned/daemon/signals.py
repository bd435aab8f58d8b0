"""Signals at start-up: held from the first line of ``main`` until their handlers exist.

Importing the daemon (wasmtime, watchdog, prometheus_client…) and building its parts takes
tens of milliseconds, during which SIGHUP's and SIGTERM's default action would kill it: a
``systemctl reload`` or ``kill -HUP`` racing a (re)start used to end the daemon. :func:`hold`
blocks SIGHUP, SIGTERM and SIGINT with ``pthread_sigmask`` first thing, so the kernel keeps
them pending; :func:`install` sets the real handlers and only then unblocks, so a signal
that arrived in between is delivered to its handler at once: a SIGHUP becomes a reload and a
SIGTERM a clean stop, both acted upon by the loop right after READY=1.

Stdlib only and tiny: ``forgeoned.daemon.main`` (the entry point) imports it before anything
slow. Threads started while the signals are held inherit the mask, which is fine: Python
runs signal handlers on the main thread anyway, and the kernel then delivers process signals
to the main thread, the one that unblocks them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Final

HELD: Final = frozenset({signal.SIGHUP, signal.SIGTERM, signal.SIGINT})


def hold() -> None:
    """Keep SIGHUP, SIGTERM and SIGINT pending (not fatal) until :func:`install`."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)


def install(on_stop: Callable[[], None], on_reload: Callable[[], None]) -> None:
    """SIGTERM/SIGINT call ``on_stop``, SIGHUP ``on_reload`` (each from the main thread, so
    they must only hand work to the loop); then deliver whatever was held meanwhile."""
    signal.signal(signal.SIGTERM, lambda signum, frame: on_stop())
    signal.signal(signal.SIGINT, lambda signum, frame: on_stop())
    signal.signal(signal.SIGHUP, lambda signum, frame: on_reload())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
