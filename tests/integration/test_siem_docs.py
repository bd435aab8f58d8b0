"""Every command of docs/operations.md's "Send the audit trail to your SIEM" section, run as
written against a real daemon (paths mapped into a temporary root, ``sudo`` dropped).

``forgeonectl`` runs with ``--socket`` of the test daemon; ``audit follow`` (which never
ends) is read for its first lines and stopped; ``systemctl restart rsyslog`` becomes
``rsyslogd -N1`` on the file the commands before it installed (the forwarding itself is
tested by test_rsyslog_forwarding.py); the unit's ``ExecStartPost=`` pins the key, as the
section says it does. Blocks other than ``sh`` (the Vector and Fluent Bit examples) are
marked as not tested in the section itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_kit import REPO, Daemon, Env, drop, plugin
from otlp_kit import Receiver
from waiting import poll_until, stop_process

SECTION = "## Send the audit trail to your SIEM"
CTL = f"{sys.executable} -c 'import sys; from forgeoned.cli import main; sys.exit(main())'"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def blocks() -> list[list[str]]:
    text = (REPO / "docs" / "operations.md").read_text()
    section = text[text.index(SECTION) : text.index("\n## ", text.index(SECTION) + 1)]
    found = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [[line for line in block.splitlines() if line.strip()] for block in found]


def test_the_section_has_the_commands_it_is_about() -> None:
    commands = [c for block in blocks() for c in block]
    for needed in ("audit export --format ocsf", "audit follow", "audit verify --dir",
                   "audit accept-gap", "60-forgeoned-siem.conf", "audit rotate-key",
                   "audit-archive", "audit otlp", "audit follow --calls"):  # fmt: skip
        assert any(needed in c for c in commands), needed


def test_every_command_of_the_section_runs(tmp_path: Path) -> None:
    if not Path(RSYSLOGD).exists():
        pytest.skip("rsyslog is not installed (apt-get install rsyslog; make setup does)")
    (tmp_path / "root").mkdir()
    env = Env(tmp_path / "root")
    # the retention the section configures, with small files so that a few actions rotate
    env.write_config(env.extra, audit=f'rotate_bytes = 8192\nretain_files = 2\n'
                     f'archive_dir = "{env.root / "state/audit-archive"}"')  # fmt: skip
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    work = tmp_path / "work"
    (work / "rsyslog.d").mkdir(parents=True)
    paths = {
        "/var/lib/forgeoned": str(env.root / "state"),
        "/etc/forgeoned": str(env.root / "etc"),
        "/usr/share/forgeoned": str(REPO / "packaging"),
        "/etc/rsyslog.d": str(work / "rsyslog.d"),
    }

    def local(command: str) -> str:
        command = command.replace("sudo ", "")  # also after &&
        for real, mapped in paths.items():
            command = command.replace(real, mapped)
        return command.replace("forgeonectl ", f"{CTL} --socket {env.socket} ", 1)

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        return done

    receiver = Receiver()
    daemon = Daemon(env)
    daemon.ready()
    try:
        with daemon.client() as client:
            client.action("hello", "pause")
            client.action("hello", "resume")
        unit = (REPO / "systemd" / "forgeoned.service").read_text()
        pin = re.search(r"^ExecStartPost=-\+/usr/bin/(forgeonectl .*)$", unit, re.M)
        assert pin is not None
        sh(local(pin.group(1)))  # what the unit does once the daemon is up
        ran = 0
        for block in blocks():
            if any("audit-archive" in c for c in block):  # its subject: files taken away
                with daemon.client() as client:
                    for _ in range(200):
                        if (env.root / "state/audit/base.json").exists():
                            break
                        client.action("hello", "pause")
                        client.action("hello", "resume")
                assert (env.root / "state/audit/base.json").exists()
            if any("accept-gap" in c for c in block):  # its subject: a log cut short
                for path in (env.root / "state/audit").glob("audit-*.jsonl"):
                    path.unlink()
                with daemon.client() as client:
                    assert "audit.gap (missing" in client.audit_verify()["why"]
            for command in block:
                ran += 1
                if command.startswith("sudo systemctl restart rsyslog"):
                    conf = work / "rsyslog.d" / "60-forgeoned-siem.conf"
                    assert 'target="siem.internal" port="5140"' in conf.read_text()
                    sh(f"{RSYSLOGD} -N1 -f {conf}")
                elif "audit follow" in command:
                    _follow(local(command), work, daemon)
                elif "audit otlp" in command:  # never ends either: a receiver stands in
                    port = receiver.url.split(":")[-1].split("/")[0]
                    position = env.root / "state/otlp.position"
                    _otlp(local(command).replace(":4318/", f":{port}/"), work, receiver, position)
                else:
                    sh(local(command))
        with daemon.client() as client:
            assert client.audit_verify()["ok"] is True  # the gap was accepted
    finally:
        assert daemon.stop() == 0
        receiver.close()
    assert (env.root / "state/otlp.position").is_file()
    assert ran == sum(len(b) for b in blocks())
    exported = (work / "forgeoned-audit.ocsf.ndjson").read_text().splitlines()
    assert [json.loads(line)["metadata"]["sequence"] for line in exported[:2]] == [1, 2]
    assert (work / "audit" / "head.json").is_file()  # the copy the auditor verified
    assert any((work / "whole").glob("audit-*.jsonl"))  # archived and current files
    assert (work / "rotated" / "audit" / "handovers.json").is_file()
    assert not (work / "audit" / "checkpoint.key").exists()


def _follow(command: str, cwd: Path, daemon: Daemon) -> None:
    """The first line is entry 1; with ``--calls``, an invoke made now comes as a line of its
    own (after the history: read until it is there)."""
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["metadata"]["sequence"] == 1
        if "--calls" in command:
            with daemon.client() as client:
                client.invoke("hello", b"x")
            line = first
            while line["metadata"]["event_code"] != "plugin.call":
                line = json.loads(proc.stdout.readline())
            assert "sequence" not in line["metadata"] and line["class_uid"] == 6003
            assert line["unmapped"]["details"]["fuel"] > 0
    finally:
        stop_process(proc, 30)
        if proc.stdout is not None:
            proc.stdout.close()


def _otlp(command: str, cwd: Path, receiver: Receiver, position: Path) -> None:
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd)
    try:  # the position is written once the receiver has acknowledged a batch: wait for both
        poll_until(
            lambda: len(receiver.records) >= 3 and position.is_file(),
            60,
            "records at the OTLP receiver and the position file",
        )
        assert [r["seq"] for r in receiver.records][:3] == [1, 2, 3]
    finally:
        stop_process(proc, 30)
