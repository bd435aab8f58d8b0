"""``audit follow`` against the real daemon: a shipper that reconnects (its connection cut
mid-stream, then the daemon restarted under it) loses nothing and duplicates nothing, by
resuming at the first seq it has not acknowledged. A follower that stops reading is dropped
after the idle timeout and can resume; followers beyond the limit are refused."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import REPO, Daemon, Env, drop, plugin
from waiting import poll_until

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.control.lanes import MAX_FOLLOWERS
from forgeoned.errors import BusyError, UnreachableError

BOUND = 60.0


def _receive(client: ControlClient, from_seq: int, until_seq: int) -> list[dict[str, Any]]:
    """Entries from ``from_seq`` until ``until_seq`` is in (acknowledging each on receipt)."""
    got: list[dict[str, Any]] = []
    for line in client.audit_follow("json", from_seq):
        got.append(json.loads(line))
        if got[-1]["seq"] >= until_seq:
            break
    return got


def _actions(daemon: Daemon, n: int) -> int:
    """``n`` pause/resume pairs (two audited events each, and their control.action)."""
    with daemon.client() as client:
        for _ in range(n):
            client.action("hello", "pause")
            client.action("hello", "resume")
    return max(int(e["seq"]) for e in daemon.env.audit_events())


def test_reconnects_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    daemon = Daemon(env)
    daemon.ready()
    acked: list[dict[str, Any]] = []
    try:
        head = _actions(daemon, 3)
        # 1. a shipper reads part of the history, then its connection is cut mid-stream
        cut = ControlClient(env.socket, timeout=BOUND)
        acked += _receive(cut, 1, head // 2)
        cut.close()
        head = _actions(daemon, 3)  # more happens while it is away
        # 2. it reconnects at the first entry it has not acknowledged, and follows live
        live = ControlClient(env.socket, timeout=BOUND)
        stream = live.audit_follow("json", acked[-1]["seq"] + 1)
        for line in stream:
            acked.append(json.loads(line))
            if acked[-1]["seq"] >= head:
                break
        _actions(daemon, 1)
        acked.append(json.loads(next(stream)))  # a live entry, as it is written
        # 3. the daemon restarts under it: the stream ends early and says so
        assert daemon.stop() == 0
        with pytest.raises(UnreachableError, match="ended early"):
            for line in stream:
                acked.append(json.loads(line))
        live.close()
        daemon = Daemon(env)
        daemon.ready()
        head = _actions(daemon, 2)
        with ControlClient(env.socket, timeout=BOUND) as again:
            acked += _receive(again, acked[-1]["seq"] + 1, head)
    finally:
        daemon.stop()
    stored = env.audit_events()
    assert [e["seq"] for e in acked] == list(range(1, head + 1))  # nothing lost, no duplicate
    assert acked == stored[:head]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(acked))
    events = {e["event"] for e in acked}
    assert {"daemon.stopped", "daemon.started", "plugin.paused", "control.action"} <= events


def test_forgeonectl_follow_prints_ocsf_lines_and_says_where_to_resume(tmp_path: Path) -> None:
    env = Env(tmp_path)
    daemon = Daemon(env)
    daemon.ready()
    code = "import sys; from forgeoned.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "--socket", env.socket, "audit", "follow",
           "--format", "ocsf", "--from-seq", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["metadata"]["sequence"] == 1 and first["class_uid"] == 1008
        second = json.loads(proc.stdout.readline())
        assert second["metadata"]["event_code"] == "daemon.started"
    finally:
        assert daemon.stop() == 0
    out, err = proc.communicate(timeout=BOUND)
    seqs = [1, 2] + [json.loads(line)["metadata"]["sequence"] for line in out.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert proc.returncode == 4
    assert f"resume with --from-seq {seqs[-1] + 1}" in err.decode()


def test_a_follower_that_stops_reading_is_dropped_and_the_limit_holds(tmp_path: Path) -> None:
    env = Env(tmp_path)
    text = env.config.read_text().replace(
        '[control]\nsocket = "run/control.sock"',
        '[control]\nsocket = "run/control.sock"\nidle_timeout_s = 1.0',
    )
    env.config.write_text(text)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    daemon = Daemon(env)
    # Without journald every audit entry is echoed on stderr: read it, or a full pipe would
    # stop the daemon before any follower buffer fills.
    pipe = daemon.proc.stderr
    assert pipe is not None
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(pipe), daemon=True)
    drain.start()
    daemon.ready()
    try:
        # a follower that never reads while the log grows by far more than its buffers
        stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(env.socket)
        stalled.sendall(b"GET /v1/audit/follow?from_seq=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        others = [ControlClient(env.socket, timeout=BOUND) for _ in range(MAX_FOLLOWERS)]
        streams = [c.audit_follow("json", 1) for c in others[:-1]]
        for stream in streams:
            assert json.loads(next(stream))["seq"] == 1
        with pytest.raises(BusyError, match="too many audit followers"):
            next(others[-1].audit_follow("json", 1))  # the stalled one holds the 8th slot

        # The log grows by far more than the stalled follower's buffers; once it has not
        # read for idle_timeout_s it is dropped, which frees its slot: a new follower gets in.
        def slot_free() -> list[bytes] | None:
            _actions(daemon, 10)
            try:
                with ControlClient(env.socket, timeout=BOUND) as probe:
                    return [next(probe.audit_follow("json", 1))]
            except BusyError:
                return None

        first = poll_until(slot_free, BOUND, "the stalled follower to be dropped", interval=0.05)
        assert json.loads(first[0])["seq"] == 1  # a resumed follower starts where it asks
        stalled.settimeout(BOUND)
        while stalled.recv(65536):  # the daemon closed the stalled one's socket
            pass
        for client in others:
            client.close()
    finally:
        stalled.close()
        daemon.proc.terminate()
        assert daemon.proc.wait(BOUND) == 0
        drain.join(BOUND)
        daemon.close()
    assert any("audit follower dropped (gone, or not reading for 1s)" in line for line in stderr)
