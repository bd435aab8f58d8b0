"""Issue 12 item 4, replayed: the state directory (and the audit log in it) on a full file
system. Every state-changing control action is refused with 503 ``audit_unavailable`` and
changes nothing, running plugins keep answering, the daemon reports itself degraded (metric,
sd_notify STATUS=), and once there is room again the actions work, an ``audit.gap`` entry
records what was refused and lost, and ``audit verify`` is intact."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import Env, InProcess, JumpClock, drop, in_process, plugin
from fullfs_kit import fill, tmpfs

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli import main as forgeonectl
from forgeoned.core.lifecycle import State
from forgeoned.errors import PluginTrap

RESTART = "[restart]\nmax_failures = 1\nbackoff_initial_s = 0.01\njitter = 0"

# Every state-changing action of the control API: (method, path, body).
ACTIONS = {
    "pause": ("POST", "/v1/plugins/good/pause", b""),
    "resume": ("POST", "/v1/plugins/held/resume", b""),
    "restart": ("POST", "/v1/plugins/good/restart", b""),
    "reset": ("POST", "/v1/plugins/crashy/reset", b""),
    "remove": ("DELETE", "/v1/plugins/good", b""),
    "install": ("POST", "/v1/plugins?filename=fresh.wasm", plugin("fresh", "1.0.0")),
    "allow_downgrade": ("POST", "/v1/plugins/good/allow-downgrade", b'{"version": "0.9.0"}'),
    "reload": ("POST", "/v1/reload", b""),
}
# What each refused action's precondition record was.
REFUSED = {
    "plugin.paused": 1,
    "plugin.resumed": 1,
    "plugin.restarted": 1,
    "plugin.reset": 1,
    "control.requested": 3,  # remove, install, allow_downgrade
    "daemon.reloaded": 1,
}


def call(sock: str, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    """One raw HTTP request on the control socket: (status, parsed JSON body)."""
    conn = http.client.HTTPConnection("localhost", timeout=60)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(sock)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


class StatusWatch:
    """The daemon's sd_notify datagrams, to wait (bounded) for a STATUS= line."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.lines: list[str] = []

    def wait(self, predicate: Any, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if line.startswith("STATUS=") and predicate(line):
                    self.lines.clear()
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such STATUS= line; got {self.lines}")
            self.sock.settimeout(left)
            self.lines += self.sock.recv(4096).decode().splitlines()

    def close(self) -> None:
        self.sock.close()


def metric(d: InProcess, name: str, labels: dict[str, str] | None = None) -> float | None:
    value: float | None = d.daemon.metrics.registry.get_sample_value(name, labels or {})
    return value


def exhaust(d: InProcess, sock: str) -> None:
    """A full file system may still hold a few records in the log file's last block: spend
    them on harmless ones (the control.action of a pause of no plugin) until one fails."""
    for _ in range(64):
        if not d.parts.trail.outage.ok:
            return
        assert call(sock, "POST", "/v1/plugins/nosuch/pause")[0] == 404
    raise AssertionError("the audit log kept accepting records on a full file system")


@pytest.fixture
def status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusWatch]:
    (tmp_path / "run").mkdir(exist_ok=True)
    path = tmp_path / "run/notify.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))  # read when the daemon is built
    watch = StatusWatch(path)
    yield watch
    watch.close()


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = Env(tmp_path)
    env.write_config(RESTART)
    text = env.config.read_text()
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))
    for name in ("good", "held"):
        drop(env.plugins, f"{name}.wasm", plugin(name, "1.0.0"))
    drop(env.plugins, "crashy.wasm", plugin("crashy", "1.0.0", handle_extra="unreachable"))
    return env


def quarantine(d: InProcess, name: str) -> None:
    host = d.parts.plugins.host(name)
    for n in (1, 2):
        with pytest.raises(PluginTrap):
            d.invoke(name)
        d.events.wait("plugin.failed", name, count=n)
        if n == 1:
            assert host.wait_for(State.RUNNING, 10)
    assert host.wait_for(State.QUARANTINED, 10)


def states(d: InProcess) -> dict[str, str]:
    return {v.name: v.state for v in d.daemon.backend.list_plugins()}


def test_a_full_audit_disk_refuses_every_change_until_there_is_room(
    env: Env, status: StatusWatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = env.socket
    with tmpfs(tmp_path / "state", "4m"), in_process(env) as d:
        status.wait(lambda line: "DEGRADED" not in line)  # READY=1's status
        d.daemon.backend.pause("held", "ops")
        quarantine(d, "crashy")
        before = {
            "states": states(d),
            "state_file": env.state(),
            "files": sorted(env.plugins.iterdir()),
        }
        assert before["states"] == {"crashy": "quarantined", "good": "running", "held": "paused"}
        assert metric(d, "forgeone_audit_write_ok") == 1

        filler = fill(tmp_path / "state")
        exhaust(d, sock)
        line = status.wait(lambda line: "DEGRADED" in line)
        assert "audit log not writable since" in line and "changes refused" in line
        assert metric(d, "forgeone_audit_write_ok") == 0

        for action, (method, path, body) in ACTIONS.items():
            code, answer = call(sock, method, path, body)
            assert code == 503, (action, answer)
            assert answer["error"]["code"] == "audit_unavailable", action
            assert "No space left on device" in answer["error"]["message"], action
            assert d.invoke("good") == b"good@1.0.0:x"  # running plugins keep serving
        assert states(d) == before["states"]  # paused stays paused, running stays running…
        assert env.state() == before["state_file"]
        assert sorted(env.plugins.iterdir()) == before["files"]  # no install, no removal
        assert "fresh" not in d.parts.plugins
        assert d.parts.plugins.stats_of("good").restarts == 0
        refused = {"outcome": "refused"}
        assert metric(d, "forgeone_audit_records_unwritten_total", refused) == len(ACTIONS)
        assert metric(d, "forgeone_audit_write_ok") == 0
        # what the operator sees: the reproduction, now a refusal with its exit code
        assert forgeonectl(["--socket", sock, "pause", "good"]) == 10
        err = capsys.readouterr().err
        assert err.startswith("forgeonectl: cannot write the audit log: No space left on device")
        assert states(d)["good"] == "running"

        filler.unlink()
        with ControlClient(sock) as client:
            client.action("good", "pause")
            assert states(d)["good"] == "paused"
            entries = client.audit_entries()
            verdict = client.audit_verify()
        status.wait(lambda line: "DEGRADED" not in line)
        assert metric(d, "forgeone_audit_write_ok") == 1

        [gap] = [e for e in entries if e["event"] == "audit.gap"]
        after = [e["event"] for e in entries if e["seq"] > gap["seq"]]
        assert "plugin.paused" in after
        assert gap["reason"] == "write_failed" and gap["actor"] == "forgeoned"
        details = gap["details"]
        assert details["kind"] == "write_failed"
        assert details["since"] < details["until"]
        assert details["refused"] == {**REFUSED, "plugin.paused": 2}
        # the control.action of each refused request (and of the last harmless one)
        assert details["lost"] == {"control.action": len(ACTIONS) + 2}
        assert "No space left on device" in details["error"]
        assert verdict["ok"] is True and verdict["gaps"] == [gap["seq"]], verdict
        assert forgeonectl(["--socket", sock, "audit", "verify"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("audit chain intact")
        assert out[1].startswith(f"1 recorded gap(s) at seq {gap['seq']}: records refused or lost")

        # Everything works again, each change recorded.
        with ControlClient(sock) as client:
            client.action("good", "resume")
            client.action("held", "resume")
            client.action("good", "restart")
            client.action("crashy", "reset")
            client.allow_downgrade("good", "0.9.0")
            client.reload()
            client.install(ACTIONS["install"][2], "fresh.wasm")
            d.events.wait("plugin.installed", "fresh")
            client.remove("fresh")
            d.events.wait("plugin.removed", "fresh")
            assert client.audit_verify()["ok"] is True
        assert d.parts.plugins.host("crashy").wait_for(State.RUNNING, 10)
        assert states(d) == {"crashy": "running", "good": "running", "held": "running"}
        assert env.state()["overrides"]["good"]["version"] == "0.9.0"
        labels = d.events.labels()
        for event in ("plugin.resumed", "plugin.restarted", "plugin.reset", "daemon.reloaded"):
            assert event in labels
        assert metric(d, "forgeone_audit_records_unwritten_total", refused) == len(ACTIONS) + 1


def test_nothing_changes_on_its_own_while_the_audit_log_is_full(
    env: Env, status: StatusWatch, tmp_path: Path
) -> None:
    env.write_config("[restart]\nmax_failures = 5\nbackoff_initial_s = 0.01\njitter = 0")
    clock = JumpClock()
    with tmpfs(tmp_path / "state", "4m"), in_process(env, clock=clock) as d:
        outage = d.parts.trail.outage
        crashy = d.parts.plugins.host("crashy")
        filler = fill(tmp_path / "state")
        exhaust(d, env.socket)
        status.wait(lambda line: "DEGRADED" in line)

        with pytest.raises(PluginTrap):
            d.invoke("crashy")  # a fault is not an action: the plugin stops, unrecorded
        d.sync()  # the fault was posted to the loop before the call raised: handled by now
        assert outage.view().lost_total >= 2  # the lost plugin.failed record
        clock.advance(1.0)  # past the restart's backoff: due at the loop's next turn
        d.sync()
        d.sync()  # a whole turn of the loop after the one that found the restart due
        schedule = d.parts.reconciler.restarts
        # the supervisor postponed it (no record, no restart)
        assert schedule.restart_at.get("crashy", 0) > clock.monotonic() + 1
        drop(env.plugins, "fresh.wasm", plugin("fresh", "1.0.0"))
        d.sync()  # the watcher's report and a full rescan went through the loop
        assert crashy.state is State.FAILED  # not restarted without a record
        assert "fresh" not in d.parts.plugins  # not installed without a record
        assert d.invoke("good") == b"good@1.0.0:x"

        filler.unlink()  # no action: the probe writes the gap, then what waited happens
        d.events.wait("plugin.installed", "fresh")
        d.events.wait("plugin.restarted", "crashy")
        assert crashy.wait_for(State.RUNNING, 10)
        status.wait(lambda line: "DEGRADED" not in line)
        entries = env.audit_events()  # while the tmpfs is still mounted

    [gap] = [e for e in entries if e["event"] == "audit.gap"]
    assert gap["details"]["lost"] == {"control.action": 1, "plugin.failed": 1}
    assert gap["details"]["refused"] == {}
    later = {(e["event"], e.get("plugin")) for e in entries if e["seq"] > gap["seq"]}
    assert {("plugin.installed", "fresh"), ("plugin.restarted", "crashy")} <= later


def test_a_file_removed_or_replaced_while_the_audit_log_is_full_waits_for_its_record(
    env: Env, status: StatusWatch, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "state", "4m"), in_process(env) as d:
        filler = fill(tmp_path / "state")
        exhaust(d, env.socket)
        status.wait(lambda line: "DEGRADED" in line)
        (env.plugins / "held.wasm").unlink()
        drop(env.plugins, "good.wasm", plugin("good", "2.0.0"))
        d.sync()  # the watcher's reports and a full rescan went through the loop
        assert d.invoke("held") == b"held@1.0.0:x"  # not removed without a record
        assert d.invoke("good") == b"good@1.0.0:x"  # not upgraded without one
        assert env.state()["active"]["good"]["version"] == "1.0.0"

        filler.unlink()
        d.events.wait("plugin.removed", "held")
        d.events.wait("plugin.upgraded", "good", version="2.0.0")
        assert d.invoke("good") == b"good@2.0.0:x"
        entries = env.audit_events()

    labels = [(e["event"], e.get("plugin")) for e in entries]
    gap = labels.index(("audit.gap", None))
    assert labels.index(("plugin.removed", "held")) > gap
    assert labels.index(("plugin.upgraded", "good")) > gap
