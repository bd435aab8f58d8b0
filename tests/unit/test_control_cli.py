"""forgeonectl pieces that need no daemon: error mapping, tables, times, completion."""

from __future__ import annotations

import json
import subprocess

import pytest

from forgeoned import errors
from forgeoned.adapters.control.client import _error_from
from forgeoned.cli import build_parser, main
from forgeoned.cli.completion import bash_script, command_tree
from forgeoned.cli.exitcodes import exit_code_for
from forgeoned.cli.output import table
from forgeoned.core.timespec import parse_time


def body(code: str, message: str = "m") -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls", "exit_code"),
    [
        (403, "forbidden", errors.ForbiddenError, 5),
        (404, "not_found", errors.NotFoundError, 6),
        (409, "conflict", errors.ConflictError, 7),
        (409, "downgrade", errors.RollbackError, 3),
        (422, "unsigned", errors.SignatureError, 3),
        (422, "over_ceiling", errors.LimitExceededError, 3),
        (502, "out_of_fuel", errors.PluginTrap, 8),
        (502, "status_nonzero", errors.PluginFault, 8),
        (422, "application_error", errors.ApplicationError, 11),
        (409, "paused", errors.PluginPausedError, 7),
        (400, "malformed_json", errors.HttpProtocolError, 1),
        (503, "busy", errors.BusyError, 1),
        (503, "unavailable", errors.UnavailableError, 12),
        (503, "audit_unavailable", errors.AuditUnavailableError, 10),
        (500, "audit_failed", errors.AuditError, 1),
        (500, "internal", errors.ForgeonedError, 1),
    ],
)
def test_error_bodies_map_to_classes_and_exit_codes(
    status: int, code: str, cls: type[errors.ForgeonedError], exit_code: int
) -> None:
    exc = _error_from(status, body(code, "the reason"))
    assert type(exc) is cls
    assert str(exc) == "the reason"
    assert exit_code_for(exc) == exit_code


def test_garbage_error_body_still_gives_a_one_line_error() -> None:
    exc = _error_from(500, b"<html>oops</html>")
    assert "HTTP 500" in str(exc) and "\n" not in str(exc)


def test_unreachable_is_exit_4(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    code = main(["--socket", "/nonexistent/forgeoned.sock", "status"])
    assert code == 4
    err = capsys.readouterr().err
    assert err.startswith("forgeonectl: cannot reach forgeoned at /nonexistent/forgeoned.sock")
    assert err.rstrip().endswith("(is it running? systemctl status forgeoned)")
    assert err.count("\n") == 1


def test_table() -> None:
    text = table(
        [{"name": "a", "state": "running"}, {"name": "long-name", "state": "x"}], ("name", "state")
    )
    assert text.splitlines() == ["NAME       STATE", "a          running", "long-name  x"]


def test_parse_time() -> None:
    now = 1_700_000_000.0
    assert parse_time("2h", now) == now - 7200
    assert parse_time("90s", now) == now - 90
    assert parse_time("7d", now) == now - 7 * 86400
    assert parse_time("1699990000", now) == 1699990000.0
    assert parse_time("2023-11-14T22:13:20+00:00", now) == now
    with pytest.raises(errors.ForgeonedError, match="bad time 'soon'"):
        parse_time("soon", now)


def test_completion_tree_covers_every_command() -> None:
    tree = command_tree(build_parser())
    for command in ("status", "invoke", "pause", "audit", "reload", "completion", "verify"):
        assert command in tree[""]
    audit = ["--help", "accept-gap", "export", "follow", "otlp", "pin-key", "rotate-key", "verify"]
    assert tree["audit"] == audit
    assert "--input-file" in tree["invoke"]


def test_bash_completion_script_completes_subcommands() -> None:
    script = bash_script(command_tree(build_parser()))
    probe = script + (
        '\nCOMP_WORDS=(forgeonectl audit ""); COMP_CWORD=2; _forgeonectl; echo "${COMPREPLY[@]}"'
        '\nCOMP_WORDS=(forgeonectl sta); COMP_CWORD=1; _forgeonectl; echo "${COMPREPLY[@]}"'
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    audit = "accept-gap export follow otlp pin-key rotate-key verify"
    assert out.stdout.splitlines() == [audit, "status"]


def test_completion_command_prints_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#compdef forgeonectl") and "complete -F _forgeonectl" in out
