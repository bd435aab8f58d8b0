"""The control API's audit and compliance routes: streamed reads of the audit log, live follow,
verification, accepting a gap, and the compliance report (see :mod:`.routes` for the table)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from forgeoned import __version__
from forgeoned.adapters.control.context import Context, Reply
from forgeoned.adapters.control.streaming import Stream
from forgeoned.core.audit_chain import rfc3339
from forgeoned.core.audit_export import export_ocsf
from forgeoned.core.call_feed import Subscription
from forgeoned.core.compliance import build_report, render_json, render_markdown
from forgeoned.core.ocsf import to_ocsf
from forgeoned.core.ocsf_live import DROPPED_EVENT, live_to_ocsf
from forgeoned.core.timespec import parse_time
from forgeoned.errors import BadRequestError


def parse_since(text: str | None, now: float) -> float | None:
    """``since`` as :func:`forgeoned.core.timespec.parse_time` reads it at wall time ``now``;
    None when absent."""
    if text is None or text == "":
        return None
    return parse_time(text, now)


def audit(ctx: Context) -> Reply:
    """The entries as they are read from disk, never all in memory: ``json`` is the object
    ``{"entries": [...]}``, ``ndjson`` one stored entry per line, ``ocsf`` one OCSF event per
    line."""
    query = ctx.request.head.query
    since = parse_since(query.get("since"), ctx.clock.wall())
    fmt = query.get("format", "json")
    if fmt not in AUDIT_FORMATS:
        raise BadRequestError(f"bad format {fmt[:20]!r}: json, ndjson or ocsf")
    entries = ctx.backend.audit_entries(since)
    if fmt == "ocsf":
        lines: Iterable[str] = export_ocsf(entries, __version__)
    else:
        lines = (_compact(e) + "\n" for e in entries)
    pieces = (line.encode() for line in lines)
    if fmt == "json":
        return Reply(200, Stream(_json_object(pieces)), "application/json")
    return Reply(200, Stream(pieces), "application/x-ndjson")


AUDIT_FORMATS = ("json", "ndjson", "ocsf")


def follow(ctx: Context) -> Reply:
    """Entries as they become durable, one per line (``json``: as stored, ``ocsf``: OCSF
    events), from ``from_seq`` (default: the next entry). A line ``{"error": …}`` ends it,
    naming the seq to resume from. With ``calls=1``, each plugin call too, as a live record
    without a seq (:mod:`forgeoned.core.call_feed`), and a ``plugin.calls.dropped`` line
    when some were lost for this follower."""
    query = ctx.request.head.query
    fmt = query.get("format", "json")
    if fmt not in ("json", "ocsf"):
        raise BadRequestError(f"bad format {fmt[:20]!r}: json or ocsf")
    text = query.get("from_seq")
    if text is not None and (not text.isdigit() or int(text) < 1):
        raise BadRequestError(f"bad from_seq {text[:20]!r}: a sequence number from 1")
    flag = query.get("calls", "0")
    if flag not in ("0", "1"):
        raise BadRequestError(f"bad calls {flag[:20]!r}: 0 or 1")
    feed = ctx.calls if flag == "1" else None
    beat = CALLS_HEARTBEAT_S if feed is not None else None
    items = ctx.backend.audit_follow(int(text) if text is not None else None, beat)
    encode = _ocsf_line if fmt == "ocsf" else _json_line
    clock = ctx.clock

    def pieces() -> Iterator[bytes]:
        yield b""  # the head goes out now, not with the first entry
        # subscribed here, on the follower's own thread, so that a stream never started
        # (too many followers) holds no buffer
        sub = feed.subscribe() if feed is not None else None
        idle = 0
        try:
            for item in items:
                if sub is not None and (sub.records or sub.dropped):
                    idle = 0
                    yield from _live(sub, encode, clock.wall())
                if item is None:
                    idle += 1
                    if sub is None or idle % _BEATS_PER_CHECK == 1:
                        yield b""
                elif "error" in item:
                    yield (_compact(item) + "\n").encode()
                    return
                else:
                    yield encode(item)
        finally:
            if sub is not None:
                sub.close()

    return Reply(200, Stream(pieces(), follow=True), "application/x-ndjson")


# How often a follower of calls looks for new call records when the log is quiet (their
# delivery delay), and how many of those looks make one check that the peer is still there
# (about the log's own heartbeat).
CALLS_HEARTBEAT_S: Final = 0.1
_BEATS_PER_CHECK: Final = 50


def _live(sub: Subscription, encode: Callable[[Mapping[str, Any]], bytes], now: float
          ) -> Iterator[bytes]:  # fmt: skip
    records, dropped = sub.take()
    if dropped:
        yield encode({"event": DROPPED_EVENT, "count": dropped, "ts": rfc3339(now)})
    for record in records:
        yield encode(record)
    yield b""  # out now


def _json_line(item: Mapping[str, Any]) -> bytes:
    return (_compact(item) + "\n").encode()


def _ocsf_line(item: Mapping[str, Any]) -> bytes:
    if "seq" in item:
        return (_compact(to_ocsf(item, __version__)) + "\n").encode()
    return (_compact(live_to_ocsf(item, __version__)) + "\n").encode()


def _compact(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _json_object(lines: Iterable[bytes]) -> Iterator[bytes]:
    """``{"entries":[…]}`` around the entry lines (each ends in a newline)."""
    yield b'{"entries":['
    sep = b""
    for line in lines:
        yield sep + line[:-1]
        sep = b","
    yield b"]}\n"


def audit_verify(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.audit_verify())


def accept_gap(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.audit_accept_gap(ctx.caller.actor))


def rotate_key(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.audit_rotate_key(ctx.caller.actor))


def compliance(ctx: Context) -> Reply:
    query = ctx.request.head.query
    now = ctx.clock.wall()
    since = parse_since(query.get("since"), now)
    fmt = query.get("format", "md")
    if fmt not in ("md", "json"):
        raise BadRequestError(f"bad format {fmt[:20]!r}: md or json")
    backend = ctx.backend
    report = build_report(
        backend.audit_entries(None),
        backend.list_plugins(),
        backend.audit_verify(),
        since,
        now=now,
        staging=backend.staging_report(),
        reviews_overdue=backend.reviews_overdue(),
    )
    if fmt == "json":
        return Reply(200, render_json(report).encode(), "application/json")
    return Reply(200, render_markdown(report).encode(), "text/markdown; charset=utf-8")
