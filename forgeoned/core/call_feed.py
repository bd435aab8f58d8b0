"""Plugin calls one by one, live, for the audit followers that ask for them (``audit follow
--calls``).

The durable record of calls is the chained ``plugin.calls`` summary (:mod:`.call_ledger`);
these records are a live view of the same calls: never written to disk, without a chain
``seq``, so a follower that reconnects cannot resume them (it resumes the chained entries).
Each subscribed follower has a buffer of at most ``capacity`` records; when it is full (the
follower does not read fast enough) further records are dropped *for that follower only*,
counted, and the follower is told how many with a ``plugin.calls.dropped`` line before its
next records. The chained entries it follows are read from the log files and never dropped.

With no subscriber, :meth:`CallFeed.publish` is never called (the caller checks
:attr:`CallFeed.subscribers`, one attribute read): the call path pays nothing more.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Final

from forgeoned.core.stats import DaemonStats

DEFAULT_CAPACITY: Final = 4096

CallRecord = dict[str, Any]


class Subscription:
    """One follower's buffer: records in order, and how many were dropped since it last took
    them."""

    def __init__(self, feed: CallFeed, capacity: int) -> None:
        self.feed = feed
        self.capacity = capacity
        self.records: collections.deque[CallRecord] = collections.deque()
        self.dropped = 0

    def take(self) -> tuple[list[CallRecord], int]:
        """The records buffered so far, and how many were dropped before them."""
        with self.feed.lock:
            records, self.records = list(self.records), collections.deque()
            dropped, self.dropped = self.dropped, 0
        return records, dropped

    def close(self) -> None:
        self.feed.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class CallFeed:
    """Thread-safe fan-out of call records to the subscribed followers."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, stats: DaemonStats | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"need capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.stats = stats  # its ``follow_calls_dropped`` counts the drops
        self.lock = threading.Lock()
        # a tuple replaced on (un)subscribe: the call path reads it without the lock
        self.subscribers: tuple[Subscription, ...] = ()
        self.dropped_total = 0

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self.capacity)
        with self.lock:
            self.subscribers = (*self.subscribers, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            self.subscribers = tuple(s for s in self.subscribers if s is not sub)

    def publish(self, record: CallRecord) -> None:
        """Give ``record`` to every subscriber with room for it; count it for the others."""
        with self.lock:
            for sub in self.subscribers:
                if len(sub.records) < sub.capacity:
                    sub.records.append(record)
                else:
                    sub.dropped += 1
                    self.dropped_total += 1
                    if self.stats is not None:
                        self.stats.follow_calls_dropped += 1
