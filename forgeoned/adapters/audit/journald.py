"""journald: audit events and plugin ``log`` lines as structured journal entries.

The journal is best effort: the tamper-evident audit log is the record of truth. So nothing
here may block a caller for long or raise: entries go through a bounded queue to one sender
thread (``systemd.journal.sendv``); a full queue or a failed send (journald not running,
socket gone) is counted in ``DaemonStats.journald_failures``, and a failed send's entry is
written to stderr instead (:mod:`forgeoned.adapters.audit.console`), so that plugin log lines
and audit echoes do not vanish while journald is down.
"""

from __future__ import annotations

import contextlib
import errno
import json
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from forgeoned.adapters.audit.console import ConsoleWriter
from forgeoned.core.events import PLUGIN_LOG_MESSAGE_ID, PRIO_INFO, AuditEvent, EventName
from forgeoned.core.ports import Clock
from forgeoned.core.stats import DaemonStats, PluginStats

IDENTIFIER: Final = "forgeoned"
JOURNAL_SOCKET: Final = "/run/systemd/journal/socket"
# plugin log levels 0 debug, 1 info, 2 notice, 3 warning, 4 error -> syslog priorities
_LEVEL_PRIORITY: Final = (7, 6, 5, 4, 3)
_STOP: Final = object()

Send = Callable[[dict[str, str]], None]
Fallback = Callable[[dict[str, str]], object]  # where an entry journald refused goes instead


def _journal_send(fields: dict[str, str]) -> None:
    import systemd.journal

    # libsystemd drops entries silently when the socket does not exist; count that instead.
    if not Path(JOURNAL_SOCKET).exists():
        raise OSError(errno.ENOENT, "journald is not running", JOURNAL_SOCKET)
    systemd.journal.sendv(*(f"{key}={value}" for key, value in fields.items()))


class JournalWriter:
    """One sender thread fed by a bounded queue; ``submit`` never blocks and never raises."""

    def __init__(
        self,
        stats: DaemonStats,
        *,
        send: Send | None = None,
        capacity: int = 10_000,
        fallback: Fallback | None = None,
    ) -> None:
        self._stats = stats
        self._send = send or _journal_send
        self._fallback = fallback if fallback is not None else ConsoleWriter().submit
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._thread = threading.Thread(target=self._run, name="forgeoned-journal", daemon=True)
        self._thread.start()

    def submit(self, fields: dict[str, str]) -> bool:
        """Queue one entry; False (and a counted failure) when the queue is full."""
        try:
            self._queue.put_nowait(fields)
        except queue.Full:
            self._fail()
            return False
        with self._cond:
            self._submitted += 1
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far was handed to journald (or failed)."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 2.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def _fail(self) -> None:
        with self._cond:
            self._stats.journald_failures += 1

    def _fall_back(self, item: object) -> None:
        with contextlib.suppress(Exception):  # stderr gone too: nothing left to tell
            self._fallback(item)  # type: ignore[arg-type]

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._send(item)  # type: ignore[arg-type]
            except Exception:  # any journald problem is only counted, never raised
                self._fail()
                self._fall_back(item)
            with self._cond:
                self._done += 1
                self._cond.notify_all()


def audit_fields(entry: Mapping[str, Any]) -> dict[str, str]:
    """The journal fields of one stored audit entry (or of an unsequenced event)."""
    label = str(entry.get("event", ""))
    try:
        name: EventName | None = EventName.from_label(label)
    except ValueError:
        name = None
    fields = {
        "MESSAGE": _message(entry),
        "PRIORITY": str(name.priority if name else PRIO_INFO),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "FORGEONE_EVENT": label,
    }
    if name is not None:
        fields["MESSAGE_ID"] = name.message_id
    for key in ("plugin", "version", "sha256", "actor", "reason", "seq", "hash"):
        if entry.get(key) is not None:
            fields[f"FORGEONE_{key.upper()}"] = _clean(str(entry[key]))
    details = entry.get("details")
    if details:
        fields["FORGEONE_DETAILS"] = _clean(json.dumps(details, sort_keys=True))
        if isinstance(details, Mapping) and details.get("file"):
            fields["FORGEONE_FILE"] = _clean(str(details["file"]))
    if name is EventName.PLUGIN_REJECTED:  # the catalog's subject names it, always set
        fields["FORGEONE_ARTIFACT"] = _artifact(entry, fields.get("FORGEONE_FILE"))
    return fields


def _artifact(entry: Mapping[str, Any], file: str | None) -> str:
    """How a rejection names what was refused: the file and, when known, the plugin."""
    plugin = " ".join(str(entry[k]) for k in ("plugin", "version") if entry.get(k))
    if file and plugin:
        return _clean(f"{file} (plugin {plugin})")
    return _clean(file or (f"of plugin {plugin}" if plugin else "(unnamed upload)"))


def _message(entry: Mapping[str, Any]) -> str:
    who = " ".join(str(entry[k]) for k in ("plugin", "version") if entry.get(k))
    text = entry.get("message") or entry.get("reason") or ""
    parts = [str(entry.get("event", "")), who, str(text)]
    return _clean(": ".join(part for part in parts if part))


def _clean(text: str, limit: int = 8192) -> str:
    return text.replace("\x00", "\\0")[:limit]


class JournaldSink:
    """Audit events to the journal, one structured entry each."""

    def __init__(self, writer: JournalWriter) -> None:
        self._writer = writer

    def emit(self, entry: Mapping[str, Any]) -> None:
        """Send a stored audit entry (with its ``seq``)."""
        self._writer.submit(audit_fields(entry))

    def record(self, event: AuditEvent) -> None:
        """:class:`AuditSink` form, for events that were not stored in the audit log."""
        self._writer.submit(audit_fields(event.fields()))


@dataclass
class _Bucket:
    tokens: float
    updated: float
    dropped: int = 0


class EntryWriter(Protocol):
    """Where plugin log entries go: a :class:`JournalWriter` or a ``ConsoleWriter``."""

    def submit(self, fields: dict[str, str]) -> bool: ...


class PluginLogSink:
    """The ``log`` host function's sink: rate limited per plugin with a token bucket.

    Each plugin may log ``burst`` lines at once and ``rate_per_s`` lines per second on
    average; lines beyond that are dropped and counted in ``PluginStats.log_dropped``, and
    when the plugin may log again a single line says how many were dropped.
    """

    def __init__(
        self,
        writer: EntryWriter,
        stats_for: Callable[[str], PluginStats],
        clock: Clock,
        *,
        rate_per_s: float = 50.0,
        burst: float = 200.0,
        max_message: int = 4096,
    ) -> None:
        self._writer = writer
        self._stats_for = stats_for
        self._clock = clock
        self._rate = rate_per_s
        self._burst = burst
        self._max = max_message
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def __call__(self, plugin: str, level: int, message: str) -> bool:
        """Log one line for ``plugin``; False when it was dropped by the rate limit."""
        now = self._clock.monotonic()
        with self._lock:
            bucket = self._buckets.get(plugin)
            if bucket is None:
                bucket = self._buckets[plugin] = _Bucket(self._burst, now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens < 1.0:
                bucket.dropped += 1
                self._stats_for(plugin).log_dropped += 1
                return False
            bucket.tokens -= 1.0
            dropped, bucket.dropped = bucket.dropped, 0
        if dropped:
            self._writer.submit(
                self._fields(plugin, 4, f"{dropped} log lines dropped (rate limit)")
                | {"FORGEONE_LOG_DROPPED": str(dropped)}
            )
        self._writer.submit(self._fields(plugin, level, message))
        return True

    def forget(self, plugin: str) -> None:
        """Drop the bucket of a removed plugin."""
        with self._lock:
            self._buckets.pop(plugin, None)

    def _fields(self, plugin: str, level: int, message: str) -> dict[str, str]:
        level = min(max(level, 0), len(_LEVEL_PRIORITY) - 1)
        return {
            # the plugin's name leads the message: `journalctl -u forgeoned` shows MESSAGE only
            "MESSAGE": f"{plugin}: {_clean(message, self._max)}",
            "MESSAGE_ID": PLUGIN_LOG_MESSAGE_ID,
            "PRIORITY": str(_LEVEL_PRIORITY[level]),
            "SYSLOG_IDENTIFIER": IDENTIFIER,
            "FORGEONE_PLUGIN": plugin,
            "FORGEONE_LOG_LEVEL": str(level),
        }
