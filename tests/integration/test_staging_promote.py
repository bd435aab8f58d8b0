"""Staging → production: a ``mode = "staging"`` daemon records what it observes of a plugin;
``forgeonectl promote`` refuses a plugin that ran too little or faulted, and otherwise writes
a signed in-toto attestation of exactly that sha256; a production daemon requiring staging
takes the artifact through ``install`` with the attestation beside it, and its compliance
report shows the staging evidence."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from daemon_kit import Env, JumpClock, drop, in_process, plugin

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli import main
from forgeoned.cli.exitcodes import OK, REJECTED
from forgeoned.core.attestation import PREDICATE_TYPE, STATEMENT_TYPE, SUFFIX
from forgeoned.errors import PluginTrap


def _ctl(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_staging_evidence_promote_and_production(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    assert _ctl(capsys, "keys", "generate", "--out", keys, "--name", "stager")[0] == OK
    (tmp_path / "staging").mkdir()
    (tmp_path / "production").mkdir()
    staging = Env(tmp_path / "staging", mode="staging")
    staging.write_config("[staging]\nmin_calls = 2\nmin_seconds = 0")
    good = plugin("hello", "1.0.0")
    bad = plugin("flaky", "1.0.0", handle_extra="unreachable")
    drop(staging.plugins, "hello.wasm", good)
    drop(staging.plugins, "flaky.wasm", bad)
    out_file = tmp_path / f"hello.wasm{SUFFIX}"
    with in_process(staging) as d:
        sock = staging.socket
        # not enough evidence yet: refused, with its code, and nothing written
        code, _, err = _ctl(capsys, "--socket", sock, "promote", "hello", "--key",
                            keys / "stager.key", "-o", out_file)  # fmt: skip
        assert code == REJECTED and "not promoted: 0 fault(s), 0 failure(s), 0 call(s)" in err
        assert not out_file.exists()
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.invoke("hello", b"y") == b"hello@1.0.0:y"
        with pytest.raises(PluginTrap):
            d.invoke("flaky")
        code, _, err = _ctl(capsys, "--socket", sock, "promote", "flaky", "--key",
                            keys / "stager.key", "-o", tmp_path / "flaky.json")  # fmt: skip
        assert code == REJECTED and "1 fault(s), 1 failure(s), 1 call(s)" in err
        assert not (tmp_path / "flaky.json").exists()
        code, out, err = _ctl(capsys, "--socket", sock, "promote", "hello", "--key",
                              keys / "stager.key", "-o", out_file)  # fmt: skip
        assert code == OK, err
        assert out.startswith("promoted hello 1.0.0")
    envelope = json.loads(out_file.read_bytes())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"][0]["digest"]["sha256"] == hashlib.sha256(good).hexdigest()
    evidence = statement["predicate"]["evidence"]
    assert (evidence["calls"], evidence["faults"]) == (2, 0)
    assert evidence["hostcalls"] == {"output ok": 4}

    # the staging daemon restarts: the version it still runs carries its evidence on
    with in_process(staging) as d:
        assert d.invoke("hello", b"z") == b"hello@1.0.0:z"
        again = tmp_path / "again.json"
        code, _, err = _ctl(capsys, "--socket", staging.socket, "promote", "hello", "--key",
                            keys / "stager.key", "-o", again)  # fmt: skip
        assert code == OK, err
    carried = json.loads(base64.b64decode(json.loads(again.read_bytes())["payload"]))
    assert carried["predicate"]["evidence"]["calls"] == 3
    assert carried["predicate"]["evidence"]["since"] == evidence["since"]

    production = Env(tmp_path / "production")
    shutil.copy(keys / "stager.pub", production.root / "trusted.d/stager.pub")
    production.write_config('[staging]\nrequire_staging = true\nattesters = ["stager"]')
    artifact = tmp_path / "hello.wasm"
    artifact.write_bytes(good)  # out_file is hello.wasm.intoto.json beside it
    with in_process(production) as d:
        code, out, err = _ctl(capsys, "--socket", production.socket, "install", artifact)
        assert code == OK, err
        assert d.invoke("hello") == b"hello@1.0.0:x"
        with ControlClient(production.socket, timeout=60) as client:
            report = client.request("GET", "/v1/compliance", query={"format": "json"})
        [row] = report["staging"]
        assert row["plugin"] == "hello" and row["evidence"]["calls"] == 2
        assert row["source"].startswith("attestation (expires ")


def test_promote_waits_for_the_minimum_time_in_staging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Enough calls are not enough: ``min_seconds`` of staging must have passed too (the
    daemon's clock, here a manual one)."""
    keys = tmp_path / "keys"
    assert _ctl(capsys, "keys", "generate", "--out", keys, "--name", "stager")[0] == OK
    staging = Env(tmp_path, mode="staging")
    staging.write_config("[staging]\nmin_calls = 1\nmin_seconds = 3600")
    drop(staging.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    out_file = tmp_path / f"hello.wasm{SUFFIX}"
    promote = ("--socket", staging.socket, "promote", "hello", "--key", keys / "stager.key",
               "-o", out_file)  # fmt: skip
    clock = JumpClock()
    with in_process(staging, clock=clock) as d:
        d.events.wait("plugin.installed", "hello")
        assert d.invoke("hello") == b"hello@1.0.0:x"
        clock.advance(3000)
        code, _, err = _ctl(capsys, *promote)
        assert code == REJECTED and "staging requires no fault, 1 call(s), 3600" in err, err
        [spent] = re.findall(r"1 call\(s\) in ([0-9.]+) s", err)
        assert 3000 <= float(spent) < 3600, err
        assert not out_file.exists()
        clock.advance(601)
        code, out, err = _ctl(capsys, *promote)
        assert code == OK and out.startswith("promoted hello 1.0.0"), err
    statement = json.loads(base64.b64decode(json.loads(out_file.read_bytes())["payload"]))
    assert statement["predicate"]["evidence"]["duration_s"] >= 3600
