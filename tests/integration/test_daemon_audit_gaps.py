"""The issue's deletion attacks on the audit log, replayed against the real daemon: each is an
``audit.gap`` entry (critical), a failed verification (``forgeonectl audit verify`` exits 9
naming what is missing; ``forgeone_audit_chain_ok`` 0) until an admin accepts it.

- the log deleted while the daemon runs, then a restart (it used to say "intact (2 entries)");
- the audit directory wiped while stopped (a new chain at seq 1 used to verify as intact);
- the log cut short at its end while stopped;
- the log files deleted while running, seen at the next check;
- the log's last entries (after its latest checkpoint) cut away while running, seen at the
  next check, before the daemon writes again.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from daemon_kit import Env, drop, in_process, plugin

from forgeoned.adapters.metrics.server import render_text
from forgeoned.cli import main

AUDIT = "state/audit"


def _ctl(env: Env, *args: str) -> int:
    return main(["--socket", env.socket, *args])


def _history(env: Env) -> int:
    """A first run with some history (15 entries or more); returns the last seq."""
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        for _ in range(6):
            d.daemon.backend.pause("hello", "uid=0(root)")
            d.daemon.backend.resume("hello", "uid=0(root)")
    seqs = [e["seq"] for e in env.audit_events()]
    assert seqs[-1] >= 15
    return int(seqs[-1])


def _gap_seen(env: Env, kind: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """With the daemon up: verify fails naming the gap; the metric says 0; the entry is there."""
    capsys.readouterr()
    assert _ctl(env, "audit", "verify") == 9
    err = capsys.readouterr().err
    assert f"audit.gap ({kind}" in err, err
    if kind == "missing":
        assert "the audit log files are gone" in err or "were deleted while" in err, err
    else:
        assert "are missing" in err, err
    gaps = [e for e in env.audit_events() if e["event"] == "audit.gap"]
    assert [g["reason"] for g in gaps] == [kind]
    return gaps[0]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_log_deleted_while_running_then_restart(
    env: Env, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    last = _history(env)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env):
        for path in (env.root / AUDIT).glob("audit-*.jsonl"):
            path.unlink()  # deleted under the running daemon
    env.write_config(env.extra, audit="verify_interval_s = 0")
    text = env.config.read_text().replace("enabled = false", 'listen = "127.0.0.1:0"')
    env.config.write_text(text)
    with caplog.at_level(logging.CRITICAL, logger="forgeoned.audit"), in_process(env) as d:
        gap = _gap_seen(env, "missing", capsys)
        # the run that lost its files saw it at its next record (the file it wrote to had
        # gone), went on with a new chain and kept the anchor where the old one had got to
        assert int(gap["details"]["anchor"]["seq"]) == last  # type: ignore[index]
        families = render_text(d.daemon.metrics.collector.model.families()).decode()
        assert "forgeone_audit_chain_ok 0" in families.splitlines()
        assert d.invoke("hello") == b"hello@1.0.0:x"  # the daemon keeps serving
        # an admin who has looked into it accepts the gap; the log is anchored anew
        assert _ctl(env, "audit", "accept-gap") == 0
        assert "accepted the audit.gap at entry" in capsys.readouterr().out
        assert _ctl(env, "audit", "verify") == 0
        assert _ctl(env, "audit", "accept-gap") == 7  # nothing left to accept
    assert [r for r in caplog.records if "AUDIT GAP" in r.getMessage()]
    accepted = [e for e in env.audit_events() if e["event"] == "control.action"]
    assert accepted[-1]["details"]["action"] == "audit_accept_gap"


def test_audit_directory_wiped_while_stopped(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    last = _history(env)
    anchored = env.state()["audit_anchor"]
    assert anchored["seq"] == last and "gap" not in anchored
    shutil.rmtree(env.root / AUDIT)  # key, head and log: a whole new chain at the next start
    with in_process(env):
        gap = _gap_seen(env, "new_chain", capsys)
        assert "entries 1.." in str(gap["message"])
        assert gap["details"]["anchor"] == {k: anchored[k] for k in ("seq", "hash", "key")}  # type: ignore[index]
    # the open gap survives a restart (it is in the state file), and is not written twice
    with in_process(env):
        assert _ctl(env, "audit", "verify") == 9
    assert [e["event"] for e in env.audit_events()].count("audit.gap") == 1


def test_log_cut_short_while_stopped(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    last = _history(env)
    path = sorted((env.root / AUDIT).glob("audit-*.jsonl"))[-1]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-5]))  # the last five entries cut away
    cut = json.loads(lines[-6])["seq"]
    # offline too, held against the anchor of a copy of the state file
    audit, state = str(env.root / AUDIT), str(env.root / "state/state.json")
    assert _ctl(env, "audit", "verify", "--dir", audit, "--state", state) == 9
    assert f"audit.gap (truncated): the audit log ends at entry {cut}" in capsys.readouterr().err
    with in_process(env):
        gap = _gap_seen(env, "truncated", capsys)
        assert f"ends at entry {cut}" in str(gap["message"]) and f"..{last}" in str(gap["message"])


def test_log_files_deleted_while_running_are_seen_at_the_next_check(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    _history(env)
    with in_process(env) as d:
        assert _ctl(env, "audit", "verify") == 0
        for path in (env.root / AUDIT).glob("audit-*.jsonl"):
            path.unlink()
        capsys.readouterr()
        assert _ctl(env, "audit", "verify") == 9
        assert "audit.gap (missing" in capsys.readouterr().err
        assert d.parts.audit_log.last_verify is not None
        assert not d.parts.audit_log.last_verify.ok


def test_entries_after_the_last_checkpoint_cut_while_running(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        for _ in range(3):
            d.daemon.backend.pause("hello", "uid=0(root)")
            d.daemon.backend.resume("hello", "uid=0(root)")
        written = d.parts.audit_log.head_seq
        assert env.state()["audit_anchor"]["seq"] < written - 4  # not covered by a checkpoint
        path = sorted((env.root / AUDIT).glob("audit-*.jsonl"))[-1]
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:-4]))  # the last four entries cut away
        cut = written - 4
        gap = _gap_seen(env, "truncated", capsys)
        assert f"ends at entry {cut} but the daemon has written up to entry {written}" in str(
            gap["message"]
        )
        assert d.parts.audit_log.last_verify is not None
        assert not d.parts.audit_log.last_verify.ok
