"""The daemon's own log records (Python ``logging``) with their syslog priority in the journal.

Under systemd, stderr is a journal stream and every line written there is stored with
``PRIORITY=6`` (info), whatever it says, unless it starts with a ``<N>`` prefix (journald's
``SyslogLevelPrefix=``, on by default). So an ``AUDIT CHAIN BROKEN`` line logged at CRITICAL
would never show in ``journalctl -p crit``. :func:`configure` picks one of three targets:

- ``journal``: stderr is the journal (``$JOURNAL_STREAM`` names its device and inode) and
  systemd-python is installed: records go over journald's native protocol
  (``systemd.journal.JournalHandler``) with ``PRIORITY``, ``SYSLOG_IDENTIFIER=forgeoned``,
  ``LOGGER`` and the code location;
- ``prefix``: stderr is the journal but systemd-python is missing: each line carries its
  ``<N>`` prefix, which journald turns into the priority;
- ``plain``: a terminal (``make run``) or a pipe: ``LEVEL logger: message`` lines.

Whatever the target, a record's message is one line (:class:`OneLine`): a message may quote
something from outside (a plugins.d file name, a key a plugin asked for, an error text), and
its control characters are written as escapes, so that no message can end its line early and
forge the next one, or send escape sequences to a terminal. A traceback attached to a record
stays as it is (it is ours).

``FORGEONED_LOG_TARGET=journal|prefix|plain`` overrides the choice. The daemon's audit events
and plugin log lines do not pass through here: they are structured journal entries of their
own (:mod:`forgeoned.adapters.audit.journald`).
"""

from __future__ import annotations

import enum
import logging
import os
import sys
from typing import Final, TextIO

from forgeoned.core.audit_bounds import printable

IDENTIFIER: Final = "forgeoned"
PLAIN_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"
NOTICE_LEVEL: Final = 25  # adapters/audit/console.NOTICE


class Target(enum.Enum):
    JOURNAL = "journal"
    PREFIX = "prefix"
    PLAIN = "plain"


class OneLine(logging.Filter):
    """Makes a record's message printable and one line (its arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = printable(record.getMessage())
        record.args = None
        return True


def priority(levelno: int) -> int:
    """The syslog priority of a logging level; NOTICE (25, between INFO and WARNING, as the
    audit echoes of notice events use it) is 5, where ``JournalHandler.map_priority`` would
    make it a warning."""
    for ceiling, prio in (
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (NOTICE_LEVEL, 5),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ):
        if levelno <= ceiling:
            return prio
    return 1


class PrefixFormatter(logging.Formatter):
    """``<N>logger: message``; every line of a multi-line record (a traceback) is prefixed,
    since journald stores each line as an entry of its own."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stderr_is_journal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stderr) is the journal stream systemd connected
    (``$JOURNAL_STREAM`` is ``DEVICE:INODE`` of it, and still names this very file)."""
    wanted = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = wanted.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
    handler.map_priority = priority  # type: ignore[attr-defined]  # NOTICE stays a notice
    return handler


def choose_target() -> Target:
    forced = os.environ.get("FORGEONED_LOG_TARGET", "")
    if forced in {t.value for t in Target}:
        return Target(forced)
    if not stderr_is_journal():
        return Target.PLAIN
    return Target.JOURNAL


def configure(level: str, target: Target | None = None) -> Target:
    """Send the root logger's records to ``target`` (chosen by :func:`choose_target` if None);
    returns the target in use (``prefix`` when the journal was wanted but systemd-python is
    missing). Replaces any handler configured before."""
    chosen = target or choose_target()
    handler = _journal_handler() if chosen is Target.JOURNAL else None
    if handler is None:
        if chosen is Target.JOURNAL:
            chosen = Target.PREFIX
        handler = logging.StreamHandler(sys.stderr)
        if chosen is Target.PREFIX:
            handler.setFormatter(PrefixFormatter())
        else:
            handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(OneLine())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return chosen


def error_line(text: str) -> None:
    """One fatal line on stderr (a refused start): ``<3>``-prefixed when stderr is the journal,
    so that ``journalctl -p err`` shows why the daemon did not start."""
    prefix = "<3>" if stderr_is_journal() else ""
    print(f"{prefix}{text}", file=sys.stderr, flush=True)
