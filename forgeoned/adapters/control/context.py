"""What a control route gets (:class:`Context`) and gives back (:class:`Reply`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from forgeoned.adapters.control.http import Request
from forgeoned.core.call_feed import CallFeed
from forgeoned.core.clock import SystemClock
from forgeoned.core.policy import Caller, Policy
from forgeoned.core.ports import Clock, ControlBackend

_SYSTEM_CLOCK: Clock = SystemClock()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # JSON-able value, bytes sent as they are, or a Stream of bytes pieces
    content_type: str = "application/octet-stream"  # for bytes bodies


@dataclass(frozen=True, slots=True)
class Context:
    backend: ControlBackend
    policy: Policy
    caller: Caller
    request: Request
    plugin: str | None
    clock: Clock = _SYSTEM_CLOCK  # time comes from here (``since``, the report's "now")
    calls: CallFeed | None = None  # live call records, for ``audit follow`` with ``calls``


Handler = Callable[[Context], Reply]
