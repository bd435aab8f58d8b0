"""The daemon: composition only. ``wiring`` builds the ``parts`` (a plain record), ``run``
runs them on the ``loop`` with sd_notify, ``reload`` puts a new configuration in force,
``main`` is the process (arguments, signals), ``host_services`` builds what each plugin's
host functions may touch, ``facade`` is what the control API and metrics see (typed against
the Protocols of ``facade_ports``).

``forgeoned.daemon:main`` is the console entry point (pyproject, packaging/bin); it imports
the daemon lazily so that ``import forgeoned.daemon.config`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from forgeoned.errors import RuntimeVersionError

EX_UNAVAILABLE: Final = 69  # sysexits: a support program is missing (the pinned wasmtime)


def main(argv: Sequence[str] | None = None) -> int:
    from forgeoned.daemon import signals

    signals.hold()  # before the slow imports: an early SIGHUP/SIGTERM must not kill us
    try:
        from forgeoned.daemon.main import main as run
    except RuntimeVersionError as exc:  # raised by the fast path's import-time check
        from forgeoned.adapters.journal_log import error_line

        error_line(f"forgeoned: {exc}")
        return EX_UNAVAILABLE
    return run(argv)
