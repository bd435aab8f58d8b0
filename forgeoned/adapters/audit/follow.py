"""Following the audit log as it grows, from any ``seq``: what ``audit follow`` streams.

A follower reads the log *files*, never a queue the log feeds: writing an entry costs the
daemon nothing per follower, and a follower that falls behind only reads older bytes later.
It yields each durable entry (``seq`` at most the log's ``durable_seq``) in order, starting at
``from_seq`` (an entry a shipper has not acknowledged yet: it resumes there after a reconnect
and gets every entry exactly once), moves to the next file on rotation, and waits on the log
when it has caught up. Each time it has caught up, and then every ``heartbeat_s`` while
nothing new comes, it yields ``None``: its consumer sends what it has batched and can see
whether anyone is still listening.

It stops with a :class:`FollowEnd` (carrying the seq to resume from) when it falls more than
``max_lag`` entries behind, when ``from_seq`` is before what the retention policy kept
(``archived``: resume at the first entry kept), and when the file it reads no longer
continues the chain it began (the log was cut or replaced under it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from forgeoned.adapters.audit.files import index_of, log_files, read_base

DEFAULT_MAX_LAG: Final = 1_000_000
DEFAULT_HEARTBEAT_S: Final = 5.0


class Followed(Protocol):
    """What a follower needs of :class:`~forgeoned.adapters.audit.log.AuditLog`."""

    directory: Path

    @property
    def durable_seq(self) -> int: ...

    def wait_durable(self, beyond: int, timeout: float) -> int: ...


@dataclass(frozen=True, slots=True)
class FollowEnd:
    """Why a follow stopped, and the seq to resume from."""

    code: str
    message: str
    resume_from_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message,
                          "resume_from_seq": self.resume_from_seq}}  # fmt: skip


def follow(
    log: Followed,
    from_seq: int,
    *,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    max_lag: int = DEFAULT_MAX_LAG,
) -> Iterator[dict[str, Any] | FollowEnd | None]:
    """Entries from ``from_seq`` on, for ever (``None``: nothing new for ``heartbeat_s``)."""
    reader = _Reader(log.directory, max(1, from_seq))
    try:
        while True:
            durable = log.durable_seq
            if durable - reader.next_seq > max_lag:
                yield FollowEnd(
                    "follower_too_slow",
                    f"{durable - reader.next_seq + 1} entries behind (more than {max_lag}); "
                    f"reconnect with from_seq={reader.next_seq}",
                    reader.next_seq,
                )
                return
            got = False
            for item in reader.read(durable):
                got = True
                yield item
                if isinstance(item, FollowEnd):
                    return
            if not got:
                yield None  # caught up: what was read goes out now, before the wait
                log.wait_durable(reader.next_seq - 1, heartbeat_s)
    finally:
        reader.close()


class _Reader:
    """Position in the log files: the open file, its offset, the next seq expected."""

    def __init__(self, directory: Path, from_seq: int) -> None:
        self.directory = directory
        self.next_seq = from_seq
        self.handle: BinaryIO | None = None
        self.index = 0
        self.partial = b""
        self.skipping = True  # before from_seq: entries are read, not yielded
        self._open(_start_file(directory, from_seq))

    def read(self, durable: int) -> Iterator[dict[str, Any] | FollowEnd]:
        """Entries up to seq ``durable`` that are in the files now."""
        while self.next_seq <= durable:
            line = self._line()
            if line is None:
                if not self._next_file():
                    return
                continue
            entry = json.loads(line)
            seq = int(entry["seq"])
            if seq < self.next_seq and self.skipping:
                continue
            if seq > self.next_seq and self.skipping and self._retained(seq):
                yield FollowEnd(
                    "archived",
                    f"entries {self.next_seq}..{seq - 1} were archived or removed by the "
                    f"retention policy; reconnect with from_seq={seq}",
                    seq,
                )
                return
            if seq != self.next_seq:
                yield FollowEnd(
                    "chain_changed",
                    f"expected entry {self.next_seq}, found {seq}: the audit log was cut or "
                    "replaced; check it with forgeonectl audit verify",
                    self.next_seq,
                )
                return
            self.skipping = False
            self.next_seq += 1
            yield entry

    def _retained(self, seq: int) -> bool:
        """Whether the entries before ``seq`` were taken away by the retention policy."""
        try:
            base = read_base(self.directory)
        except ValueError:
            return False
        return base is not None and base.seq >= seq - 1

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def _line(self) -> bytes | None:
        if self.handle is None:
            return None
        data = self.handle.readline()
        if not data.endswith(b"\n"):  # nothing more yet, or a line being written
            self.partial += data
            return None
        line, self.partial = self.partial + data, b""
        return line

    def _next_file(self) -> bool:
        """Go on with the file after this one, once it exists (this one is then complete)."""
        later = [p for p in log_files(self.directory) if index_of(p) > self.index]
        if not later or self.partial:
            return False
        self._open(later[0])
        return True

    def _open(self, path: Path | None) -> None:
        self.close()
        if path is None:
            return
        self.handle = path.open("rb")
        self.index = index_of(path)
        self.partial = b""


def _start_file(directory: Path, from_seq: int) -> Path | None:
    """The last file whose first entry is at or before ``from_seq`` (or the first file)."""
    files = log_files(directory)
    chosen = files[0] if files else None
    for path in files:
        with path.open("rb") as handle:
            first = handle.readline()
        if not first.endswith(b"\n"):
            break
        if int(json.loads(first)["seq"]) <= from_seq:
            chosen = path
        else:
            break
    return chosen
