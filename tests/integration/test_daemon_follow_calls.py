"""``audit follow --calls`` against the real daemon: a follower that asks sees every invoke as
one live record (caller uid, plugin, function, outcome, duration, fuel) and the chained
``plugin.calls`` summaries carry the same fuel; a follower that does not ask sees none; one
too slow for the records is told how many it lost and still gets every chained entry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import REPO, Daemon, Env, drop, in_process, plugin
from waiting import poll_until

from forgeoned.adapters.control.client import ControlClient
from forgeoned.errors import BadRequestError

BOUND = 60.0
CLI = "import sys; from forgeoned.cli import main; sys.exit(main())"


def _hello(env: Env) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))


def _pause_resume(client: ControlClient) -> None:
    client.action("hello", "pause")
    client.action("hello", "resume")


def test_a_follower_asking_for_calls_sees_each_invoke_and_one_without_sees_none(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    _hello(env)
    daemon = Daemon(env)
    daemon.ready()
    start = max(int(e["seq"]) for e in env.audit_events()) + 1
    cmd = [sys.executable, "-c", CLI, "--socket", env.socket, "audit", "follow", "--calls",
           "--from-seq", str(start)]  # fmt: skip
    calls = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    plain = ControlClient(env.socket, timeout=BOUND)
    try:
        assert calls.stdout is not None
        with daemon.client() as client:
            stream = plain.audit_follow("json", start)
            _pause_resume(client)
            # both followers are in once the entry ``start`` reached them
            assert json.loads(next(stream))["seq"] == start
            assert json.loads(calls.stdout.readline())["seq"] == start
            for n in range(5):
                assert client.invoke("hello", b"x%d" % n) == b"hello@1.0.0:x%d" % n
            with pytest.raises(BadRequestError):
                client.invoke("hello", b"y", function="nope")
            _pause_resume(client)  # chained entries after the calls, for both
        got: list[dict[str, Any]] = []
        paused = 0
        while paused < 3 or sum(1 for g in got if g.get("event") == "plugin.call") < 6:
            got.append(json.loads(calls.stdout.readline()))
            paused += got[-1].get("event") in ("plugin.paused", "plugin.resumed")
        seen_plain: list[dict[str, Any]] = []
        while not any(e["event"] == "plugin.resumed" for e in seen_plain[1:]):
            seen_plain.append(json.loads(next(stream)))
    finally:
        plain.close()
        assert daemon.stop() == 0
        calls.terminate()
        calls.communicate(timeout=BOUND)
    records = [g for g in got if g.get("event") == "plugin.call"]
    assert len(records) == 6 and all("seq" not in r and "hash" not in r for r in records)
    uid = os.getuid()
    ok = [r for r in records if r["reason"] == "ok"]
    assert len(ok) == 5
    for r in ok:
        assert r["plugin"] == "hello" and r["actor"].startswith(f"uid={uid}")
        assert r["details"]["uid"] == uid and r["details"]["function"] == "handle"
        assert r["details"]["duration_ms"] >= 0 and r["details"]["fuel"] > 0
    bad = [r for r in records if r["reason"] != "ok"]
    assert bad[0]["reason"] == "bad_request" and bad[0]["details"]["function"] == "nope"
    assert bad[0]["details"]["fuel"] == 0  # it never ran
    assert all(e["event"] != "plugin.call" for e in seen_plain)
    assert all("seq" in e for e in seen_plain)
    # the chained summaries (written at the stop) count the same calls and the same fuel
    summaries = [e for e in env.audit_events() if e["event"] == "plugin.calls"]
    handle = [s for s in summaries if s["details"]["function"] == "handle"]
    assert sum(s["details"]["count"] for s in handle) == 5
    assert sum(s["details"]["fuel"] for s in handle) == sum(r["details"]["fuel"] for r in ok)
    assert max(s["details"]["max_fuel"] for s in handle) == max(r["details"]["fuel"] for r in ok)


def _scrape(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_slow_follower_is_told_it_lost_call_records_and_gets_every_chained_entry(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    _hello(env)
    text = env.config.read_text()
    text = text.replace(
        '[control]\nsocket = "run/control.sock"',
        '[control]\nsocket = "run/control.sock"\nfollow_calls_buffer = 8',
    )
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))  # fmt: skip
    with in_process(env) as d:
        port = d.daemon.metrics.port
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(env.socket)
        slow.sendall(b"GET /v1/audit/follow?from_seq=1&calls=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.settimeout(BOUND)
        head = slow.recv(4096)  # the answer's head (and maybe a few entries): it is in
        assert head.startswith(b"HTTP/1.1 200")
        with ControlClient(env.socket, timeout=BOUND) as client:

            def dropped() -> bool:
                # it does not read while calls go on, with chained entries between them
                for _ in range(200):
                    client.invoke("hello", b"x")
                _pause_resume(client)
                return _scrape(port, "forgeone_audit_follow_calls_dropped_total") > 0

            poll_until(dropped, BOUND, "call records to be dropped for the slow follower",
                       interval=0)  # fmt: skip
            _pause_resume(client)
            last = max(int(e["seq"]) for e in env.audit_events())
        # now it reads everything: the chained entries are all there, and the marker
        data = head + _read_until(slow, f'"seq":{last},'.encode())
        slow.close()
    lines = [json.loads(x) for x in _dechunk(data).splitlines() if x.strip()]
    chained = [x for x in lines if "seq" in x]
    assert [x["seq"] for x in chained] == list(range(1, last + 1))
    markers = [x for x in lines if x.get("event") == "plugin.calls.dropped"]
    assert markers and all(m["count"] > 0 for m in markers)
    invokes = sum(s["details"]["count"] for s in env.audit_events()
                  if s["event"] == "plugin.calls")  # fmt: skip
    records = sum(1 for x in lines if x.get("event") == "plugin.call")
    assert records < invokes


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        more = sock.recv(65536)
        assert more, "the follower was cut before the last entry"
        data += more
    return data


def _dechunk(data: bytes) -> str:
    """The body of a chunked answer (head dropped; the last chunk may be cut short)."""
    body = data.split(b"\r\n\r\n", 1)[1]
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        out += rest[:size]
        body = rest[size + 2 :]
    return out.decode()
