"""The daemon: composition only. ``wiring`` builds the parts (a plain record), ``main`` runs
the loop, signals and sd_notify, ``facade`` is what the control API and metrics see.

``forgeoned.daemon:main`` is the console entry point (pyproject, packaging/bin); it imports
the daemon lazily so that ``import forgeoned.daemon.config`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from forgeoned.daemon import signals

    signals.hold()  # before the slow imports: an early SIGHUP/SIGTERM must not kill us
    from forgeoned.daemon.main import main as run

    return run(argv)
