"""Journal entries as log lines on stderr: without journald, or when it cannot be reached.

A :class:`ConsoleWriter` takes the same fields a journal entry has and writes them through
the ``logging`` module (the daemon logs to stderr, ``LEVEL logger: message``): a plugin's
``log`` line as ``forgeoned.plugin`` at its own level, ``PLUGIN: message``; any other entry (an
audit echo) as ``forgeoned.audit``. The daemon uses it for plugin logs when ``[audit] journald
= false``, and :class:`~forgeoned.adapters.audit.journald.JournalWriter` falls back to it for
every entry journald refuses, so lines are never lost silently. What reaches it has been
rate limited already (:class:`~forgeoned.adapters.audit.journald.PluginLogSink`).

Levels: syslog priorities map to logging levels one to one, NOTICE (25) included, so a
plugin's level 0 debug, 1 info, 2 notice, 3 warning and 4 error print under those names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from forgeoned.core.events import PLUGIN_LOG_MESSAGE_ID

NOTICE: Final = 25  # between INFO and WARNING, as syslog's notice is
logging.addLevelName(NOTICE, "NOTICE")

# syslog priority (0 emerg … 7 debug) -> logging level
_BY_PRIORITY: Final = {
    7: logging.DEBUG,
    6: logging.INFO,
    5: NOTICE,
    4: logging.WARNING,
    3: logging.ERROR,
}


def level_of(priority: str | int) -> int:
    """The logging level of a syslog priority (anything below 3 is CRITICAL)."""
    try:
        value = int(priority)
    except ValueError:
        return logging.INFO
    return _BY_PRIORITY.get(value, logging.CRITICAL if value < 3 else logging.DEBUG)


class ConsoleWriter:
    """Writes journal fields as log lines; the ``submit`` of a journal writer, never raising."""

    def __init__(
        self,
        plugin_logger: logging.Logger | None = None,
        audit_logger: logging.Logger | None = None,
    ) -> None:
        self._plugin = plugin_logger or logging.getLogger("forgeoned.plugin")
        self._audit = audit_logger or logging.getLogger("forgeoned.audit")

    def submit(self, fields: Mapping[str, str]) -> bool:
        level = level_of(fields.get("PRIORITY", "6"))
        message = fields.get("MESSAGE", "")
        if fields.get("MESSAGE_ID") == PLUGIN_LOG_MESSAGE_ID:
            self._plugin.log(level, "%s", message)  # "NAME: text": the sink put the name in
        else:
            self._audit.log(level, "%s", message)
        return True
