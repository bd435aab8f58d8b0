"""Live call records for the followers that ask for them: bounded per follower, drops counted,
and their OCSF form valid against the 1.8.0 schema."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from control_fakes import FakeBackend
from ocsf_schema import MISSING_REASON, SCHEMA, validate

from forgeoned import __version__
from forgeoned.adapters.control.context import Context
from forgeoned.adapters.control.parser import parse_request
from forgeoned.adapters.control.records import call_record
from forgeoned.adapters.control.routes import resolve
from forgeoned.adapters.control.streaming import Stream
from forgeoned.core.call_feed import CallFeed
from forgeoned.core.clock import ManualClock
from forgeoned.core.ocsf_live import live_to_ocsf
from forgeoned.core.policy import Caller, Policy
from forgeoned.errors import BadRequestError

needs_schema = pytest.mark.skipif(not SCHEMA.is_file(), reason=MISSING_REASON)
ROOT = Caller(0, 0, 1, "root")


def _record(n: int) -> dict[str, object]:
    caller = Caller(1000, 1000, 7, "alice")
    return call_record(caller, "hello", "handle", "ok", 0.0012, n, 1.7e9 + n)


def test_without_subscribers_nothing_is_kept() -> None:
    feed = CallFeed(capacity=2)
    assert feed.subscribers == ()
    sub = feed.subscribe()
    sub.close()
    assert feed.subscribers == ()


def test_a_full_buffer_drops_for_that_follower_only_and_counts() -> None:
    feed = CallFeed(capacity=2)
    slow, fast = feed.subscribe(), feed.subscribe()
    for n in range(5):
        feed.publish(_record(n))
        if n < 4:
            records, dropped = fast.take()
            assert [r["details"]["fuel"] for r in records] == [n] and dropped == 0
    records, dropped = slow.take()
    assert [r["details"]["fuel"] for r in records] == [0, 1]
    assert dropped == 3 and feed.dropped_total == 3
    assert slow.take() == ([], 0)  # told once
    feed.publish(_record(9))
    assert len(slow.take()[0]) == 1


def test_a_record_names_caller_plugin_function_outcome_duration_and_fuel() -> None:
    record = _record(42)
    assert record["event"] == "plugin.call" and "seq" not in record and "hash" not in record
    assert record["actor"] == "uid=1000(alice)" and record["plugin"] == "hello"
    assert record["reason"] == "ok"
    assert record["details"] == {"function": "handle", "uid": 1000, "duration_ms": 1.2, "fuel": 42}


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        CallFeed(capacity=0)


@needs_schema
def test_live_records_validate_as_ocsf_api_activity_without_chain_fields() -> None:
    call = live_to_ocsf(_record(5), __version__)
    assert validate(call) == []
    assert call["class_uid"] == 6003 and call["status"] == "Success"
    assert "uid" not in call["metadata"] and "sequence" not in call["metadata"]
    assert call["metadata"]["event_code"] == "plugin.call"
    assert call["unmapped"]["details"]["fuel"] == 5
    dropped = live_to_ocsf({"event": "plugin.calls.dropped", "count": 7, "ts": _record(1)["ts"]},
                           __version__)  # fmt: skip
    assert validate(dropped) == []
    assert dropped["count"] == 7 and dropped["status"] == "Failure"
    assert dropped["metadata"]["event_code"] == "plugin.calls.dropped"
    with pytest.raises(ValueError, match="not a live record"):
        live_to_ocsf({"event": "plugin.installed", "ts": _record(1)["ts"]}, __version__)


def _follow(backend: FakeBackend, query: str, feed: CallFeed | None) -> Iterator[bytes]:
    request = parse_request(f"GET /v1/audit/follow?{query} HTTP/1.1\r\n\r\n".encode())
    route = resolve(request.head.method, request.head.path)
    ctx = Context(backend, Policy(), ROOT, request, None, ManualClock(), feed)
    body = route.run(ctx).body
    assert isinstance(body, Stream)
    return iter(body.pieces)


def test_the_follow_route_interleaves_live_records_and_tells_of_drops() -> None:
    backend = FakeBackend()
    backend.audit_log.append({"event": "daemon.started", "seq": 1, "ts": _record(0)["ts"]})
    feed = CallFeed(capacity=1)
    pieces = _follow(backend, "calls=1&from_seq=1", feed)
    assert next(pieces) == b""  # the head
    assert json.loads(next(pieces))["seq"] == 1  # subscribed now
    for n in range(3):
        feed.publish(_record(n))
    rest = [json.loads(p) for p in pieces if p]
    assert rest[0] == {"event": "plugin.calls.dropped", "count": 2, "ts": rest[0]["ts"]}
    assert rest[1]["details"]["fuel"] == 0 and len(rest) == 2
    assert feed.subscribers == ()  # the stream ended: the buffer is gone


def test_without_calls_the_follow_route_subscribes_to_nothing() -> None:
    feed = CallFeed()
    pieces = list(_follow(FakeBackend(), "", feed))
    assert pieces == [b"", b""] and feed.subscribers == ()
    with pytest.raises(BadRequestError, match="bad calls"):
        _follow(FakeBackend(), "calls=yes", feed)
