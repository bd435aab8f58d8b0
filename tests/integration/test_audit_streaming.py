"""Export, follow and the compliance report read the audit log as a stream: a 52 MB log costs the
daemon (and forgeonectl) a bounded amount of memory, not a multiple of the log's size.

The issue's measurement: one ``GET /v1/audit`` or compliance report on a 62 MB log raised the
daemon's RSS by 224 MiB. Here the daemon's peak RSS (``VmHWM``, reset with ``clear_refs``
after a warm-up pass) is read from /proc while it serves every read of the whole log.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_bulk import forgeonectl_peak_kib, reset_peak, rss_kib, write_log
from daemon_kit import REPO, Daemon, Env

LOG_BYTES = 52 << 20
GROWTH_KIB = 4 * 1024  # "a few MiB"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, int]]:
    env = Env(tmp_path_factory.mktemp("big"))
    entries = write_log(env.root / "state" / "audit", LOG_BYTES)
    daemon = Daemon(env)
    try:
        daemon.ready(timeout=120)
        yield daemon, entries
    finally:
        daemon.stop()


def _read_everything(daemon: Daemon) -> dict[str, int]:
    """Every streamed read of the whole log, consumed line by line; what each returned."""
    seen: dict[str, int] = {}
    with daemon.client() as client:
        for fmt in ("ndjson", "ocsf"):
            seen[fmt] = sum(1 for _ in client.audit_lines(fmt))
        seen["json"] = sum(1 for _ in client.lines("GET", "/v1/audit"))
        report = json.loads(client.compliance(None, "json"))
        seen["report"] = sum(report["event_counts"].values())
        seen["listed"] = len(report["denials"])
        assert client.audit_verify()["ok"] is True
    with daemon.client() as client:  # a shipper following from entry 1 to the head
        followed = 0
        for line in client.audit_follow("json", 1):
            followed += 1
            if json.loads(line)["seq"] >= seen["ndjson"]:
                break
        seen["followed"] = followed
    return seen


def test_the_daemon_serves_a_52_mb_log_in_a_few_mib(big: tuple[Daemon, int]) -> None:
    daemon, entries = big
    size = sum(p.stat().st_size for p in (daemon.env.root / "state/audit").glob("audit-*"))
    assert size >= 50 << 20
    first = _read_everything(daemon)  # warm-up: imports, caches, the pool's threads
    pid = daemon.proc.pid
    before = rss_kib(pid)
    reset_peak(pid)
    second = _read_everything(daemon)
    growth = rss_kib(pid, "VmHWM") - before
    print(f"log {size / 2**20:.1f} MiB, {entries} entries; daemon RSS {before} KiB, "
          f"peak growth while serving every read again: {growth} KiB")  # fmt: skip
    assert growth <= GROWTH_KIB
    assert first == second
    # entries written by audit_bulk plus the daemon's own (started, checkpoints)
    assert second["ndjson"] == second["ocsf"] == second["report"] == second["followed"]
    assert second["ndjson"] >= entries
    assert second["listed"] == 1000  # the most recent denials; the rest counted


def test_forgeonectl_export_streams_too(big: tuple[Daemon, int], tmp_path: Path) -> None:
    daemon, entries = big
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ctl = ["--socket", daemon.env.socket]
    code, small = forgeonectl_peak_kib([*ctl, "audit", "verify"], env, subprocess.DEVNULL)
    assert code == 0
    out = tmp_path / "export.ndjson"
    for fmt in ("ocsf", "json", "csv"):
        with out.open("wb") as sink:
            code, peak = forgeonectl_peak_kib(
                [*ctl, "audit", "export", "--format", fmt], env, sink.fileno()
            )
        assert code == 0, fmt
        print(f"forgeonectl audit export --format {fmt}: {out.stat().st_size >> 20} MiB out, "
              f"peak RSS {peak} KiB (audit verify: {small} KiB)")  # fmt: skip
        assert peak - small <= GROWTH_KIB, fmt
    lines = out.read_bytes().count(b"\n")
    assert lines > entries  # csv: a header and one row per entry
