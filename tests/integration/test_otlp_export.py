"""``forgeonectl audit otlp`` against a local OTLP/HTTP receiver that decodes the protobuf
(``ExportLogsServiceRequest``): every entry arrives once, in order, with its seq, hash, event,
MESSAGE_ID and severity; a second run resumes from ``--position`` without a duplicate; a
receiver that refuses a batch ends the run non-zero and the position does not move; the live
form follows new entries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_kit import REPO, Daemon, Env, drop, in_process, plugin
from otlp_kit import Receiver
from waiting import poll_until

from forgeoned.cli import main
from forgeoned.core.events import EventName


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_every_entry_arrives_once_and_a_second_run_resumes(
    tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "d").mkdir()
    env = Env(tmp_path / "d")
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    position = tmp_path / "otlp.position"
    ship = ["--socket", env.socket, "audit", "otlp", "--endpoint", receiver.url,
            "--position", str(position), "--batch", "2", "--once"]  # fmt: skip
    with in_process(env) as d:
        d.daemon.backend.pause("hello", "uid=0(root)")
        d.daemon.backend.resume("hello", "uid=0(root)")
        assert main([*ship, "--from-seq", "1"]) == 0
        first = list(receiver.records)
        stored = env.audit_events()[: len(first)]
        assert [r["seq"] for r in first] == list(range(1, len(first) + 1))
        assert [(r["hash"], r["prev_hash"]) for r in first] == [
            (e["hash"], e["prev_hash"]) for e in stored
        ]
        for r in first:
            event = EventName.from_label(r["event"])
            assert r["message_id"] == event.message_id and r["severity"] >= 5
            assert r["service"] == "forgeoned" and r["scope"] == "forgeoned.audit"
        assert int(position.read_text()) == first[-1]["seq"] + 1
        assert receiver.requests >= 2  # batches of 2

        d.daemon.backend.pause("hello", "uid=0(root)")
        assert main(ship) == 0  # no --from-seq: resumes at the position
        seqs = [r["seq"] for r in receiver.records]
        assert seqs == list(range(1, len(seqs) + 1))  # nothing twice, nothing skipped
        assert "plugin.paused" in [r["event"] for r in receiver.records[len(first) :]]


def test_a_refused_batch_ends_the_run_and_keeps_the_position(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d").mkdir()
    env = Env(tmp_path / "d")
    position = tmp_path / "otlp.position"
    position.write_text("1\n")
    receiver.refuse = True
    with in_process(env):
        code = main(["--socket", env.socket, "audit", "otlp", "--endpoint", receiver.url,
                     "--position", str(position), "--once"])  # fmt: skip
    assert code != 0
    assert "refused entries 1.." in capsys.readouterr().err
    assert position.read_text() == "1\n" and receiver.records == []


def test_the_live_form_follows_new_entries(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "d").mkdir()
    env = Env(tmp_path / "d")
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    daemon = Daemon(env)
    daemon.ready()
    cmd = [sys.executable, "-c", "import sys; from forgeoned.cli import main; sys.exit(main())",
           "--socket", env.socket, "audit", "otlp", "--endpoint", receiver.url,
           "--from-seq", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE)
    try:
        poll_until(lambda: len(receiver.records) >= 3, 30, "the first entries")
        with daemon.client() as client:
            client.action("hello", "pause")
        poll_until(lambda: any(r["event"] == "plugin.paused" for r in receiver.records),
                   30, "the new entry, within the flush interval")  # fmt: skip
    finally:
        assert daemon.stop() == 0
        proc.wait(30)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.stderr.close()
    seqs = [r["seq"] for r in receiver.records]
    assert seqs == list(range(1, len(seqs) + 1))
    assert f"resume with --from-seq {seqs[-1] + 1}" in err  # the daemon stopped: where to go on
