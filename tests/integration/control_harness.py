"""Run a real control server on the hand-written fakes of tests/unit/control_fakes.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from control_fakes import SIGNED_MAGIC, FakeBackend, ListSink

from forgeoned.adapters.control.server import ControlServer
from forgeoned.core.clock import ManualClock
from forgeoned.core.control_config import ControlConfig, parse_control_config

__all__ = ["SIGNED_MAGIC", "FakeBackend", "ListSink", "ManualClock", "config", "running"]
SWEEP_S = 0.01  # the deadline sweep's period in these tests (deadlines on a manual clock)


def config(sock: Path, **raw: Any) -> ControlConfig:
    return parse_control_config({"socket": str(sock), **raw})


@contextmanager
def running(
    cfg: ControlConfig, backend: FakeBackend | None = None, clock: ManualClock | None = None
) -> Iterator[tuple[ControlServer, FakeBackend, ListSink]]:
    """A started server; its deadlines are on ``clock`` if given (else the real clock)."""
    backend = backend if backend is not None else FakeBackend.with_plugins("hello", "billing-a")
    sink = ListSink()
    server = ControlServer(cfg, backend, sink, cfg.policy, clock=clock, sweep_interval_s=SWEEP_S)
    server.start()
    try:
        yield server, backend, sink
    finally:
        server.close()
