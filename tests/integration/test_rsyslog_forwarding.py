"""The packaged rsyslog configuration forwards the audit trail, tested with the real software:
the daemon writes to a real journald, a real rsyslogd runs ``packaging/rsyslog`` (imjournal →
omfwd, JSON over TCP) against a local TCP listener standing in for the SIEM, and every event
of a scripted lifecycle must arrive with its MESSAGE_ID and fields."""

from __future__ import annotations

import json
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import REPO, Daemon, Env, drop, plugin
from journal_kit import journald  # noqa: F401 (a fixture, used by name)
from waiting import poll_until

from forgeoned.core.events import EventName

pytestmark = [pytest.mark.journald, pytest.mark.usefixtures("journald")]
PACKAGED = REPO / "packaging" / "rsyslog" / "60-forgeoned-siem.conf"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


class Siem(socketserver.ThreadingTCPServer):
    """Collects the JSON lines rsyslog sends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, Siem)
        for line in self.rfile:
            with server.lock:
                server.received.append(json.loads(line))


@pytest.fixture
def siem() -> Iterator[Siem]:
    if not Path(RSYSLOGD).exists():
        pytest.skip("rsyslog is not installed (apt-get install rsyslog; make setup does)")
    server = Siem()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _rsyslog_conf(work: Path, port: int) -> Path:
    """The packaged file as an operator installs it: target and port set, nothing else."""
    packaged = PACKAGED.read_text()
    assert 'target="siem.example.com" port="6514"' in packaged
    conf = work / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{work}")\n'
        + packaged.replace(
            'target="siem.example.com" port="6514"', f'target="127.0.0.1" port="{port}"'
        )
    )
    return conf


def test_a_scripted_lifecycle_arrives_whole_at_the_siem(tmp_path: Path, siem: Siem) -> None:
    env = Env(tmp_path)
    env.config.write_text(env.config.read_text().replace("journald = false", "journald = true"))
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    daemon = Daemon(env)
    daemon.ready()
    try:  # installed, started, paused, resumed, upgraded, removed, a denied request…
        with daemon.client() as client:
            client.action("hello", "pause")
            client.action("hello", "resume")
            assert daemon.invoke("hello") == b"hello@1.0.0:x"
        drop(env.plugins, "hello-2.wasm", plugin("hello", "2.0.0"))
        daemon.wait_until(lambda s: s.get("hello", {}).get("version") == "2.0.0")
        (env.plugins / "junk.wasm").write_bytes(b"\0asm junk")
        poll_until(lambda: any(e["event"] == "plugin.rejected" for e in env.audit_events()),
                   30, "the rejection")  # fmt: skip
        with daemon.client() as client:
            client.remove("hello")
    finally:
        assert daemon.stop() == 0
    stored = env.audit_events()
    work = tmp_path / "rsyslog"
    work.mkdir()
    rsyslog = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(_rsyslog_conf(work, siem.server_address[1])),
         "-i", str(work / "rsyslogd.pid")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    pid = str(daemon.proc.pid)

    def arrived() -> list[dict[str, Any]] | None:
        if rsyslog.poll() is not None:
            out = rsyslog.stdout.read() if rsyslog.stdout else ""
            raise AssertionError(f"rsyslogd exited {rsyslog.returncode}: {out}")
        with siem.lock:
            ours = [r for r in siem.received if r.get("_PID") == pid]
        return ours if len(ours) >= len(stored) else None

    try:
        try:
            received = poll_until(arrived, 60, "every audit event at the SIEM", interval=0.2)
        except AssertionError as exc:  # say how far it got, and whether journald has them
            journal = subprocess.run(
                ["journalctl", "-o", "json", f"_PID={pid}"],
                check=False,
                capture_output=True,
                text=True,
            ).stdout.count("FORGEONE_EVENT")
            with siem.lock:
                count = sum(1 for r in siem.received if r.get("_PID") == pid)
            raise AssertionError(
                f"{exc}: {count} of {len(stored)} arrived; the journal holds {journal} "
                "audit events of the daemon (fewer: journald lost them, e.g. it was stopped)"
            ) from exc
    finally:
        rsyslog.terminate()
        rsyslog.communicate(timeout=30)
    by_seq = {int(r["FORGEONE_SEQ"]): r for r in received}
    print(f"{len(received)} events forwarded by rsyslog; e.g. {sorted(received[0])}")
    assert sorted(by_seq) == [e["seq"] for e in stored]  # each exactly once, none missing
    for entry in stored:
        got = by_seq[entry["seq"]]
        name = EventName.from_label(entry["event"])
        assert got["MESSAGE_ID"] == name.message_id, entry["event"]
        assert got["FORGEONE_EVENT"] == entry["event"]
        assert got["FORGEONE_HASH"] == entry["hash"]
        assert got["SYSLOG_IDENTIFIER"] == "forgeoned"
        for key in ("plugin", "version", "sha256", "actor", "reason"):
            if entry.get(key) is not None:
                assert got[f"FORGEONE_{key.upper()}"] == str(entry[key]), (entry["seq"], key)
    events = {e["event"] for e in stored}
    assert {"plugin.installed", "plugin.upgraded", "plugin.removed", "plugin.paused",
            "plugin.rejected", "control.action", "daemon.started", "daemon.stopped",
            "audit.checkpoint"} <= events  # fmt: skip
