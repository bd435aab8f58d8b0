"""``forgeonectl audit verify --dir DIR --key PUB`` and ``audit pin-key``: no daemon involved.

The socket given points nowhere, so any attempt to reach a daemon would fail the command.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forgeoned.adapters.audit.log import AuditLog
from forgeoned.cli import main
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName

NOWHERE = "/nonexistent/forgeoned/control.sock"


def _log(directory: Path, n: int = 7) -> None:
    with AuditLog(directory, ManualClock(), rotate_bytes=1500, checkpoint_every=3) as log:
        for i in range(n):
            log.record(AuditEvent(EventName.PLUGIN_UPGRADED, plugin="p", version=f"1.{i}.0"))


def ctl(*args: str) -> int:
    return main(["--socket", NOWHERE, "audit", *args])


@pytest.fixture
def copied(tmp_path: Path) -> tuple[Path, Path]:
    """An audit directory written by the log, its key pinned, copied to an auditor's place."""
    state = tmp_path / "state" / "audit"
    _log(state)
    pinned = tmp_path / "etc" / "audit-checkpoint.pub"
    pinned.parent.mkdir()
    assert ctl("pin-key", "--dir", str(state), "--out", str(pinned)) == 0
    copy = tmp_path / "auditor" / "audit"
    shutil.copytree(state, copy, ignore=shutil.ignore_patterns("checkpoint.key"))
    return copy, pinned


def test_an_intact_copy_verifies_offline(
    copied: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    copy, pinned = copied
    assert len(list(copy.glob("audit-*.jsonl"))) > 1  # rotated: the chain spans files
    capsys.readouterr()
    assert ctl("verify", "--dir", str(copy), "--key", str(pinned)) == 0
    out = capsys.readouterr()
    assert out.out.startswith("audit chain intact (") and out.err == ""


def test_an_edited_copy_names_the_entry(
    copied: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    copy, pinned = copied
    first = sorted(copy.glob("audit-*.jsonl"))[0]
    first.write_bytes(first.read_bytes().replace(b'"1.1.0"', b'"6.6.6"'))
    assert ctl("verify", "--dir", str(copy), "--key", str(pinned)) == 9
    err = capsys.readouterr().err
    assert "audit chain broken at seq 3" in err and "does not match its hash" in err


def test_a_directory_rebuilt_with_a_new_key_fails_against_the_pinned_key(
    copied: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy, pinned = copied
    forged = tmp_path / "forged"
    _log(forged, n=9)  # a consistent chain under another key
    shutil.rmtree(copy)
    shutil.copytree(forged, copy)
    assert ctl("verify", "--dir", str(copy)) == 0  # self-consistent: only the pinned key tells
    assert "warning: trusting" in capsys.readouterr().err
    assert ctl("verify", "--dir", str(copy), "--key", str(pinned)) == 9
    assert "not the daemon's audit key" in capsys.readouterr().err
    # pin-key never replaces the pinned copy, and says why
    assert ctl("pin-key", "--dir", str(copy), "--out", str(pinned)) == 9
    assert "was replaced or wiped" in capsys.readouterr().err


def test_a_missing_directory_or_key_is_a_one_line_error(
    copied: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy, pinned = copied
    assert ctl("verify", "--dir", str(tmp_path / "nothing"), "--key", str(pinned)) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert ctl("verify", "--dir", str(tmp_path / "empty"), "--key", str(pinned)) == 1
    assert "no audit log files" in capsys.readouterr().err
    assert ctl("verify", "--dir", str(copy), "--key", str(tmp_path / "none.pub")) == 1
    assert "cannot read" in capsys.readouterr().err
    assert ctl("verify", "--key", str(pinned)) == 1
    assert "--key and --state need --dir" in capsys.readouterr().err
    assert ctl("pin-key", "--dir", str(copy), "--out", str(pinned)) == 0
    assert "is the one pinned" in capsys.readouterr().out
