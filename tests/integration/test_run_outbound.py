"""``forgeonectl run`` with outbound HTTP: ``--allow-http`` grants origins (the manifest's
request ∩ these), the daemon's connect-time address rules hold (loopback refused unless
``--allow-cidr``), ``--bind-secret`` binds a ``--secret`` to hosts, ``--config`` lets the
operator's ``[http]`` decide; ``--record`` keeps the responses (never a secret) and
``--replay`` answers from them with the server gone: no connection is made."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import Env
from http_kit import WAT, CountingServer

from forgeoned.cli import main
from forgeoned.cli.devtools import package_plugin
from forgeoned.cli.exitcodes import FAILURE, OK, PLUGIN_FAULT
from forgeoned.core.http_wire import decode_response, encode_request


def _ctl(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _web(tmp_path: Path, *origins: str) -> Path:
    path = tmp_path / "web.wasm"
    manifest = {
        "name": "web",
        "version": "1.0.0",
        "abi": 1,
        "capabilities": {"http": list(origins)},
    }
    path.write_bytes(package_plugin(WAT, manifest))
    return path


def _request(tmp_path: Path, url: str, headers: list[list[str]] | None = None) -> Path:
    path = tmp_path / f"req-{abs(hash((url, str(headers))))}"
    path.write_bytes(encode_request("GET", url, headers or []))
    return path


def _answer(out: str) -> tuple[int, dict[str, Any], bytes]:
    """The plugin's http_request result, and the run report."""
    report = json.loads(out)
    data = base64.b64decode(report["exports"][2]["output_base64"])
    return struct.unpack("<i", data[:4])[0], report, data[4:]


def test_allow_http_grants_the_intersection_with_the_address_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with CountingServer() as one, CountingServer() as two:
        first, second = f"http://127.0.0.1:{one.port}", f"http://127.0.0.1:{two.port}"
        web = _web(tmp_path, first, second)
        loopback = ("--allow-cidr", "127.0.0.1/32")
        run = ("run", web, "--json", "--allow-http", first, *loopback, "--input-file")
        code, out, _ = _ctl(capsys, *run, _request(tmp_path, first + "/ok"))
        assert code == OK
        result, report, response = _answer(out)
        assert result > 0 and decode_response(response)[::2] == (200, b"hello")
        assert report["exports"][2]["hostcalls"] == {"http_request ok": 1, "output ok": 2}
        assert one.connections == 1
        # asked for by the manifest, not granted on the command line: -2, audited, no connection
        code, out, _ = _ctl(capsys, *run, _request(tmp_path, second + "/ok"))
        result, report, _ = _answer(out)
        assert (code, result, two.connections) == (OK, -2, 0)
        assert report["denials"] == [
            f"plugin web was denied http_request({second}: origin not allowed): not_granted (-2)"
        ]
        # granted, but loopback without --allow-cidr: refused at connect time (-5)
        argv = ("run", web, "--json", "--allow-http", first, "--input-file")
        code, out, _ = _ctl(capsys, *argv, _request(tmp_path, first + "/ok"))
        result, report, _ = _answer(out)
        assert (code, result, one.connections) == (OK, -5, 1)
        assert report["exports"][2]["hostcalls"]["http_request refused"] == 1
        assert any("loopback" in d for d in report["denials"])
        # a grant the manifest did not ask for grants nothing
        other = _web(tmp_path, second)
        code, out, _ = _ctl(capsys, "run", other, "--json", "--allow-http", first, *loopback,
                            "--input-file", _request(tmp_path, first + "/ok"))  # fmt: skip
        assert _answer(out)[0] == -2 and one.connections == 1


def test_a_secret_is_filled_in_only_for_the_hosts_it_is_bound_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("t0ken-value\n")
    with CountingServer() as server:
        origin = f"http://127.0.0.1:{server.port}"
        auth = [["authorization", "Bearer {{secret:token}}"]]
        req = _request(tmp_path, origin + "/ok", auth)
        secret = f"token={tmp_path / 'token'}"
        base = ("run", _web(tmp_path, origin), "--json", "--allow-http", origin,
                "--allow-cidr", "127.0.0.1/32", "--secret", secret)  # fmt: skip
        code, out, _ = _ctl(capsys, *base, "--bind-secret", "token=127.0.0.1", "--input-file", req)
        assert code == OK and _answer(out)[0] > 0
        assert server.requests[-1][2]["authorization"] == "Bearer t0ken-value"
        code, out, _ = _ctl(
            capsys, *base, "--bind-secret", "token=api.example", "--input-file", req
        )
        result, report, _ = _answer(out)
        assert (result, server.connections) == (-2, 1)
        assert report["denials"] == [
            f"plugin web was denied http_request({origin}: credential 'token' is not bound to "
            "127.0.0.1): secret_not_bound (-2)"
        ]
        code, _, err = _ctl(capsys, "run", _web(tmp_path, origin), "--bind-secret", "token=x")
        assert code == FAILURE and "--bind-secret: grants nothing without --allow-http" in err


def test_config_grants_decide_and_command_line_grants_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with CountingServer() as server:
        origin = f"http://127.0.0.1:{server.port}"
        (tmp_path / "daemon").mkdir()
        env = Env(tmp_path / "daemon")
        web = _web(tmp_path, origin)
        req = _request(tmp_path, origin + "/ok", [["authorization", "{{secret:token}}"]])
        (env.root / "creds").mkdir()
        (env.root / "creds/token").write_text("from-the-credentials-dir")
        env.write_config('mode = "development"\ncredentials_dir = "creds"')
        env.config.write_text(
            env.config.read_text().replace('mode = "production"\n', "")
            + f'[http.plugins.web]\nallow = ["{origin}"]\nallow_cidrs = ["127.0.0.1/32"]\n'
            + '[http.plugins.web.credentials]\ntoken = ["127.0.0.1"]\n'
        )
        code, out, err = _ctl(
            capsys, "run", web, "--config", env.config, "--json", "--input-file", req
        )
        assert code == OK, err
        assert _answer(out)[0] > 0 and server.connections == 1
        assert server.requests[0][2]["authorization"] == "from-the-credentials-dir"
        code, _, err = _ctl(capsys, "run", web, "--config", env.config, "--allow-http", origin)
        assert code == FAILURE and "--allow-http: not with --config" in err
        env.config.write_text(env.config.read_text().replace('allow_cidrs = ["127.0.0.1/32"]', ""))
        code, out, err = _ctl(
            capsys, "run", web, "--config", env.config, "--json", "--input-file", req
        )
        assert _answer(out)[0] == -5 and server.connections == 1


def test_record_keeps_responses_not_secrets_and_replay_needs_no_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("hello")  # the server's answer is the secret's value
    tape = tmp_path / "web.tape.json"
    with CountingServer() as server:
        origin = f"http://127.0.0.1:{server.port}"
        web = _web(tmp_path, origin)
        headers = [["authorization", "Bearer {{secret:token}}"], ["cookie", "session=abc"]]
        req = _request(tmp_path, origin + "/ok", headers)
        secret = f"token={tmp_path / 'token'}"
        grants = ("--allow-http", origin, "--allow-cidr", "127.0.0.1/32",
                  "--secret", secret, "--bind-secret", "token=127.0.0.1")  # fmt: skip
        code, first, _ = _ctl(
            capsys, "run", web, *grants, "--input-file", req, "--record", tape, "--json"
        )
        assert code == OK and server.connections == 1
    # the server is gone: any connection attempt would now fail (-8)
    recorded = json.loads(tape.read_text())
    (entry,) = [i for i in recorded["interactions"] if i["fn"] == "http_request"]
    assert entry["key"] == f"GET {origin}/ok" and entry["status"] == 200
    assert entry["headers"] == [
        ["authorization", "Bearer {{secret:token}}"],
        ["cookie", "<redacted>"],
    ]
    assert base64.b64decode(entry["body"]) == b"{{secret:token}}" and entry["resubstituted"] == [
        "token"
    ]
    assert "session=abc" not in tape.read_text() and "aGVsbG8" not in tape.read_text()
    code, again, err = _ctl(
        capsys, "run", web, *grants, "--input-file", req, "--replay", tape, "--json"
    )
    assert code == OK, err
    assert _answer(again)[2] == _answer(first)[2]  # the recorded response, the secret put back
    assert decode_response(_answer(again)[2])[2] == b"hello"
    assert server.connections == 1
    # a replay that meets another request than recorded faults there
    other = _request(tmp_path, origin + "/echo")
    code, _, err = _ctl(capsys, "run", web, *grants, "--input-file", other, "--replay", tape)
    assert code == PLUGIN_FAULT
    assert (
        f"replay diverged at interaction 1: the plugin called http_request(GET {origin}/echo)"
        in err
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow-http", "ftp://x.example:21"], "--allow-http: "),
        (["--allow-http", "http://x.example:80", "--allow-cidr", "10.0.0.0/33"], "--allow-cidr: "),
        (["--allow-cidr", "127.0.0.1/32"], "--allow-cidr: grants nothing without --allow-http"),
        (["--allow-http", "http://x.example:80", "--bind-secret", "token"], "expected NAME=VALUE"),
        (["--set", "retries"], "--set 'retries': expected NAME=VALUE"),
        (["--set", "a=1", "--set", "a=2"], "--set a: given twice"),
    ],
)
def test_bad_grants_are_one_line_errors_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    code, out, err = _ctl(capsys, "run", _web(tmp_path, "http://x.example:80"), *flags)
    assert code == FAILURE and out == "" and len(err.splitlines()) == 1
    assert err.startswith("forgeonectl: ") and message in err
