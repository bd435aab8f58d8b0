"""``forgeoned --config PATH``: the process entry point.

Parses the arguments (``--check-config`` checks and exits), configures the daemon's log,
builds the :class:`~forgeoned.daemon.run.Daemon` and installs the real signal handlers
(:mod:`forgeoned.daemon.signals`: what arrived while they were held is acted upon now), then
runs it. A configuration that cannot be loaded exits with ``EX_CONFIG`` (78), as systemd
expects; any other refusal of the start with 1.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from forgeoned.adapters import journal_log
from forgeoned.daemon import signals
from forgeoned.daemon.check import DEFAULT_CONFIG, EX_CONFIG, parse_args, run_check
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.run import Daemon
from forgeoned.errors import ConfigError, ForgeonedError


def _install_signals(daemon: Daemon) -> None:
    """The real handlers; a SIGHUP/SIGTERM held since :func:`signals.hold` arrives now."""

    def reload() -> None:  # the report goes to the journal and the audit log
        daemon.reloader.reload()

    signals.install(
        on_stop=lambda: daemon.loop.post(daemon.stop), on_reload=lambda: daemon.loop.post(reload)
    )


def main(argv: Sequence[str] | None = None) -> int:
    signals.hold()  # already held by forgeoned.daemon.main; again for direct callers
    args = parse_args(argv)
    if args.check_config is not None:
        chosen = args.check_config if args.check_config is not True else args.config
        return run_check(Path(chosen) if chosen else DEFAULT_CONFIG)
    journal_log.configure(args.log_level)
    # What the imports built (modules, classes, functions: ~45,000 objects) lives as long as
    # the process: moved out of the collector's sight, the collections of the start (and
    # every full one later) need not walk it again.
    gc.freeze()
    try:
        daemon = Daemon(load_config(args.config))
    except (ConfigError, ForgeonedError) as exc:
        journal_log.error_line(f"forgeoned: {exc}")
        return EX_CONFIG if isinstance(exc, ConfigError) else 1  # EX_CONFIG, as systemd expects
    _install_signals(daemon)
    try:
        return daemon.run()
    except ForgeonedError as exc:
        journal_log.error_line(f"forgeoned: {exc}")
        daemon.close_all()
        return 1


if __name__ == "__main__":
    sys.exit(main())
