"""The daemon's own log lines on stderr (the journal under systemd): one record, one line.

A log message may quote something from outside (a plugins.d file name, a key a plugin asked
for, an error text); :class:`OneLineFormatter` writes its control characters as escapes, so
no message can end its line early and forge the next one, or send escape sequences to a
terminal. A traceback attached to a record stays as it is (it is ours).
"""

from __future__ import annotations

import logging
from typing import Final

from forgeoned.core.audit_bounds import printable

FORMAT: Final = "%(levelname)s %(name)s: %(message)s"


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def configure(level: str) -> None:
    """``logging.basicConfig`` with :class:`OneLineFormatter` on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
