"""``forgeonectl run`` with the provider hooks: ``--fn`` calls a named function as the daemon
does (an undeclared one refused with the daemon's own error, nothing run), ``--set`` and
``--config`` give ``config_get`` its values, metric calls appear in the report, and plugin
metrics are refused as the daemon refuses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemon_kit import Env, drop, in_process
from hooks_wat import hooks_plugin

from forgeoned.cli import main
from forgeoned.cli.exitcodes import APPLICATION_ERROR, FAILURE, OK, REJECTED
from forgeoned.errors import BadRequestError


def _env(root: Path, extra: str = "") -> Env:
    root.mkdir()
    env = Env(root)
    if extra:
        env.write_config(extra)
    return env


def _ctl(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def edge(tmp_path: Path) -> Path:
    path = tmp_path / "edge.wasm"
    path.write_bytes(hooks_plugin())
    return path


def test_fn_loops_a_named_function_and_reports_its_metrics(
    edge: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("run", edge, "--fn", "check", "--input", "verdict=allow", "--loop", "3", "--json")
    code, out, _ = _ctl(capsys, *argv)
    assert code == OK
    report = json.loads(out)
    exports = report["exports"]
    assert [e["export"] for e in exports] == [
        "init", "start", "check", "check", "check", "stop", "unload",
    ]  # fmt: skip
    assert [e["output"] for e in exports[2:5]] == ["3", "3", "3"]  # metric_add answered 0
    assert (
        exports[2]["hostcalls"] == {"metric_add ok": 1, "output ok": 1} and exports[2]["fuel"] > 0
    )
    assert report["metrics"]["requests"] == {
        "type": "counter", "series": [{"labels": {"verdict": "allow"}, "value": 3.0}],
    }  # fmt: skip
    # the text report: the output of each call, then the series
    code, out, err = _ctl(capsys, "run", edge, "--fn", "observe", "--loop", "2")
    assert code == OK and out == "3\n3\n"
    assert "  check" not in err and "metric latency_seconds count 2 sum 0.1" in err
    # an undeclared metric: -2 and a denial, as in the daemon
    code, out, _ = _ctl(capsys, "run", edge, "--fn", "undeclared", "--json")
    report = json.loads(out)
    assert report["exports"][2]["output"] == "1" and report["exports"][2]["hostcalls"] == {
        "metric_add denied": 1,
        "output ok": 1,
    }
    assert any("metric_add(nope)" in d for d in report["denials"])


def test_fn_answers_and_refusals_are_the_daemons(
    tmp_path: Path, edge: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _ctl(capsys, "run", edge, "--fn", "fail", "--json")
    assert code == APPLICATION_ERROR
    fail = json.loads(out)["exports"][2]
    assert (fail["export"], fail["status"], fail["output"]) == ("fail", "status 5", "partial")
    refusals = {}
    for fn in ("ghost", "Bad-Name"):
        code, out, err = _ctl(capsys, "run", edge, "--fn", fn, "--json")
        assert code == FAILURE and out == ""  # refused before anything ran
        refusals[fn] = err
    env = _env(tmp_path / "daemon")
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        with pytest.raises(BadRequestError) as daemon:
            d.daemon.backend.invoke("edge", b"", None, "ghost")
        assert f"forgeonectl: {daemon.value}\n" == refusals["ghost"]
        for fn, err in refusals.items():  # forgeonectl invoke prints the daemon's answer
            invoked = _ctl(capsys, "--socket", env.socket, "invoke", "edge", "--fn", fn)
            assert (invoked[0], invoked[2]) == (FAILURE, err)
        assert d.view("edge").state == "running"
    assert "has no function 'ghost' (its manifest lists: check, fail, gauge," in refusals["ghost"]
    assert "bad function name 'Bad-Name'" in refusals["Bad-Name"]


def test_set_gives_config_get_its_values_and_a_bad_value_refuses_the_run(
    edge: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def value(*argv: str) -> str:
        code, out, err = _ctl(capsys, "run", edge, *argv, "--json")
        assert code == OK, err
        return str(json.loads(out)["exports"][2]["output"])

    assert value("--input", "endpoint") == "https://reports.example"  # the default
    assert value("--input", "retries", "--set", "retries=5") == "5"
    assert value("--input", "ratio", "--set", "ratio=0.5") == "0.5"
    assert value("--input", "ratio") == "none"  # declared, no default, not set
    code, out, err = _ctl(capsys, "run", edge, "--input", "retries", "--set", "retries=many")
    assert code == REJECTED and out == ""
    assert "--set: retries: expected int, got 'many'" in err
    code, _, err = _ctl(capsys, "run", edge, "--set", "colour=red")
    assert code == REJECTED and "--set: colour: unknown key (not in the manifest)" in err


def test_config_gives_what_the_daemon_gives(
    tmp_path: Path, edge: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _env(tmp_path / "daemon", 'plugin_config_dir = "conf.d"\ncredentials_dir = "creds"')
    (env.root / "conf.d").mkdir()
    (env.root / "creds").mkdir()
    (env.root / "creds/edge-token").write_text("s3cr3t-value")
    (env.root / "conf.d/edge.toml").write_text('retries = 7\ntoken = { credential = "edge-token" }')

    def run(key: str) -> str:
        code, out, err = _ctl(capsys, "run", edge, "--config", env.config, "--input", key)
        assert code == OK, err
        return out.strip()

    assert run("retries") == "7" and run("token") == "s3cr3t-value"
    drop(env.plugins, "edge.wasm", edge.read_bytes())
    with in_process(env) as d:
        assert (
            d.invoke("edge", b"retries") == b"7" and d.invoke("edge", b"token") == b"s3cr3t-value"
        )
    code, _, err = _ctl(capsys, "run", edge, "--config", env.config, "--set", "retries=1")
    assert code == FAILURE and "--set: not with --config" in err
    (env.root / "conf.d/edge.toml").write_text('retries = "seven"')
    code, _, err = _ctl(capsys, "run", edge, "--config", env.config)
    assert code == REJECTED and "edge.toml: retries: expected int" in err
