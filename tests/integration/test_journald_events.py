"""Audit events and plugin log lines in a real journal, read back with ``journalctl -o json``.

A running systemd-journald is used when there is one (a CI runner, a developer machine);
otherwise (a container as root) the fixture starts ``systemd-journald`` for this module and
stops it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import poll_until

from forgeoned.adapters.audit.journald import JournaldSink, JournalWriter, PluginLogSink
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.core.clock import ManualClock, SystemClock
from forgeoned.core.events import PLUGIN_LOG_MESSAGE_ID, AuditEvent, EventName
from forgeoned.core.stats import DaemonStats, PluginStats

pytestmark = pytest.mark.journald
SOCKET = "/run/systemd/journal/socket"
CATALOG = Path(__file__).resolve().parents[2] / "systemd" / "forgeoned.catalog"


def _running() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(SOCKET)
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def journald() -> Iterator[None]:
    if shutil.which("journalctl") is None:
        pytest.skip("journalctl not installed")
    if _running():
        yield
        return
    binary = next(
        (
            p
            for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald")
            if os.path.exists(p)
        ),
        None,
    )
    if binary is None or os.geteuid() != 0:
        pytest.skip("no journald running and cannot start one (needs root and systemd)")
    proc = subprocess.Popen([binary], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll_until(lambda: _running() or proc.poll() is not None, 20, "journald socket")
        if proc.poll() is not None:
            pytest.skip(f"systemd-journald exited with {proc.returncode}")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read(**match: str) -> list[dict[str, Any]]:
    args = ["journalctl", "-o", "json", "--no-pager", "-q"] + [f"{k}={v}" for k, v in match.items()]
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _read_until(count: int, **match: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = poll_until(
        lambda: (got := _read(**match)) and len(got) >= count and got, 30, str(match)
    )
    return found


@pytest.mark.usefixtures("journald")
def test_audit_events_reach_the_journal_with_their_fields(tmp_path: Path) -> None:
    plugin = f"jtest-{uuid.uuid4().hex[:12]}"
    stats = DaemonStats()
    writer = JournalWriter(stats)
    trail = AuditTrail(AuditLog(tmp_path, SystemClock()), JournaldSink(writer), stats)
    quarantined = trail.record_entry(
        AuditEvent(
            EventName.PLUGIN_QUARANTINED,
            plugin=plugin,
            version="1.2.0",
            sha256="ab" * 32,
            actor="supervisor",
            reason="restart_budget",
            message="crashed 5 times",
        )
    )
    trail.record(AuditEvent(EventName.PLUGIN_PAUSED, plugin=plugin, actor="uid:0"))
    assert writer.flush(10)
    entries = _read_until(2, FORGEONE_PLUGIN=plugin)
    first = next(e for e in entries if e["FORGEONE_EVENT"] == "plugin.quarantined")
    assert first["MESSAGE_ID"] == EventName.PLUGIN_QUARANTINED.message_id
    assert first["PRIORITY"] == "3"
    assert first["SYSLOG_IDENTIFIER"] == "forgeoned"
    assert first["FORGEONE_VERSION"] == "1.2.0"
    assert first["FORGEONE_SHA256"] == "ab" * 32
    assert first["FORGEONE_ACTOR"] == "supervisor"
    assert first["FORGEONE_REASON"] == "restart_budget"
    assert first["FORGEONE_SEQ"] == str(quarantined["seq"])
    assert first["MESSAGE"] == f"plugin.quarantined: {plugin} 1.2.0: crashed 5 times"
    paused = next(e for e in entries if e["FORGEONE_EVENT"] == "plugin.paused")
    assert paused["MESSAGE_ID"] == EventName.PLUGIN_PAUSED.message_id
    assert stats.journald_failures == 0
    writer.close()


@pytest.mark.usefixtures("journald")
def test_plugin_log_flood_is_limited_in_the_journal() -> None:
    plugin = f"jlog-{uuid.uuid4().hex[:12]}"
    stats: defaultdict[str, PluginStats] = defaultdict(PluginStats)
    writer = JournalWriter(DaemonStats())
    sink = PluginLogSink(writer, stats.__getitem__, ManualClock(), rate_per_s=1, burst=20)
    accepted = sum(sink(plugin, 2, f"line {i}") for i in range(2000))
    assert accepted == 20
    assert stats[plugin].log_dropped == 1980
    assert writer.flush(10)
    lines = _read_until(20, FORGEONE_PLUGIN=plugin)
    assert len(lines) == 20
    assert {e["MESSAGE_ID"] for e in lines} == {PLUGIN_LOG_MESSAGE_ID}
    assert {e["SYSLOG_IDENTIFIER"] for e in lines} == {"forgeoned"}
    assert sorted(e["MESSAGE"] for e in lines) == sorted(f"{plugin}: line {i}" for i in range(20))
    writer.close()


@pytest.mark.usefixtures("journald")
def test_journalctl_x_explains_the_entry_with_the_catalog(tmp_path: Path) -> None:
    plugin = f"jcat-{uuid.uuid4().hex[:12]}"
    writer = JournalWriter(DaemonStats())
    JournaldSink(writer).record(AuditEvent(EventName.PLUGIN_QUARANTINED, plugin=plugin))
    assert writer.flush(10)
    _read_until(1, FORGEONE_PLUGIN=plugin)
    writer.close()
    # A private root gets our catalog the way a package installs it. `journalctl -x` only
    # reads the database at its absolute path, so it runs in a mount namespace where the
    # freshly built database is bind-mounted there: the system catalog stays untouched.
    root = tmp_path / "root"
    (root / "usr/lib/systemd/catalog").mkdir(parents=True)
    shutil.copy(CATALOG, root / "usr/lib/systemd/catalog/forgeoned.catalog")
    update = subprocess.run(
        ["journalctl", f"--root={root}", "--update-catalog"], check=False, capture_output=True
    )
    assert update.returncode == 0, update.stderr
    listed = subprocess.run(
        ["journalctl", f"--root={root}", "--list-catalog"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = {name.message_id for name in EventName} | {PLUGIN_LOG_MESSAGE_ID}
    assert {line.split()[0] for line in listed.splitlines()} == expected
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("journalctl -x check needs root and unshare")
    if not os.path.isdir("/var/lib/systemd/catalog"):
        pytest.skip("no /var/lib/systemd/catalog to bind over")
    command = 'mount --bind "$0" /var/lib/systemd/catalog && exec journalctl -x --no-pager "$1"'
    shown = subprocess.run(
        [
            "unshare",
            "--mount",
            "sh",
            "-c",
            command,
            str(root / "var/lib/systemd/catalog"),
            f"FORGEONE_PLUGIN={plugin}",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if shown.returncode != 0 and "unshare" in shown.stderr:
        pytest.skip(f"cannot make a mount namespace: {shown.stderr.strip()}")
    assert f"Subject: plugin {plugin} quarantined" in shown.stdout, shown.stdout + shown.stderr
    assert "restart budget" in shown.stdout


SCRIPT = """
import json, sys
from pathlib import Path
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.audit.journald import JournaldSink, JournalWriter
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats
stats = DaemonStats()
writer = JournalWriter(stats)
log = AuditLog(Path(sys.argv[1]), SystemClock())
trail = AuditTrail(log, JournaldSink(writer), stats)
for _ in range(3):
    trail.record(AuditEvent(EventName.PLUGIN_FAILED, plugin="p", reason="trap"))
writer.flush(10)
events = [e["event"] for e in log.entries()]
print(json.dumps({"failures": stats.journald_failures, "events": events, "ok": log.verify().ok}))
"""


def test_journald_not_running_events_still_reach_the_audit_log(tmp_path: Path) -> None:
    """In a private mount namespace /run/systemd is empty: journald is really unreachable."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not os.path.isdir("/run/systemd"):
        pytest.skip("needs root, unshare and /run/systemd")
    command = 'mount -t tmpfs tmpfs /run/systemd && exec "$0" -c "$1" "$2"'
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", command, sys.executable, SCRIPT, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a mount namespace: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["events"].count("plugin.failed") == 3
    assert result["ok"] is True
    assert result["failures"] == 4  # genesis checkpoint + 3 events, all counted, none raised


@pytest.mark.usefixtures("journald")
def test_the_daemons_own_critical_line_reaches_the_journal_at_priority_crit(
    tmp_path: Path,
) -> None:
    """As under systemd: stderr is the journal stream ($JOURNAL_STREAM names it), so the
    daemon logs over the native protocol and `journalctl -p crit` shows a broken chain."""
    from daemon_kit import Daemon, Env, drop, plugin

    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    first = Daemon(env)
    first.ready()
    assert first.stop() == 0
    log = env.root / "state/audit/audit-000001.jsonl"
    log.write_bytes(log.read_bytes().replace(b"plugins restored", b"plugins restoreD", 1))
    # The shell names the pipe it hands down as stderr, as systemd names the journal stream.
    stream = 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"'
    second = Daemon(env, prefix=("sh", "-c", stream, "sh"))
    try:
        second.ready()
        pid = str(second.proc.pid)
        [critical] = _read_until(1, _PID=pid, PRIORITY="2")
        assert critical["SYSLOG_IDENTIFIER"] == "forgeoned"
        assert critical["LOGGER"] == "forgeoned.audit"
        assert "AUDIT CHAIN BROKEN" in critical["MESSAGE"]
        priorities = [e["PRIORITY"] for e in _read(_PID=pid)]
        assert priorities.count("2") == 1 and "6" in priorities  # info lines stay info
    finally:
        second.stop()
