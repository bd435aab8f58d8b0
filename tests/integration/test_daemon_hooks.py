"""Provider hooks through the real daemon (issue 13 items 1, 2, 4): named functions, plugin
metrics and per-plugin configuration; every bad input is a clear error, an audit event, a
metric, and changes nothing that runs."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from daemon_kit import Env, InProcess, drop, in_process
from hooks_wat import FUNCTIONS, hooks_plugin, unchecked_hooks_plugin

from forgeoned.cli import main
from forgeoned.errors import ApplicationError, BadRequestError

CONF_DIR = "etc/plugins.conf.d"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    (tmp_path / CONF_DIR).mkdir(parents=True)
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds/edge-token").write_text("s3cr3t-value")
    configure(e, "")
    return e


def configure(env: Env, extra: str) -> None:
    """The hooks' directories, a scrape port, and ``extra`` at top level."""
    env.write_config(f'plugin_config_dir = "{CONF_DIR}"\ncredentials_dir = "creds"\n{extra}')
    text = env.config.read_text()
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))


def operator_file(env: Env, text: str) -> None:
    path = env.root / CONF_DIR / "edge.toml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def scrape(d: InProcess) -> list[str]:
    port = d.daemon.metrics.port
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return list(body.decode().splitlines())


def call(d: InProcess, fn: str, data: bytes = b"") -> bytes:
    out: bytes = d.daemon.backend.invoke("edge", data, None, fn)
    return out


def test_named_functions_answer_and_are_counted_by_name(env: Env) -> None:
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        assert d.invoke("edge", b"endpoint") == b"https://reports.example"
        with pytest.raises(ApplicationError) as failed:
            call(d, "fail")
        assert (failed.value.status, failed.value.output) == (5, b"partial")
        with pytest.raises(BadRequestError, match="has no function 'ghost'"):
            call(d, "ghost")
        assert d.view("edge").state == "running"  # an application error is not a fault
        lines = scrape(d)
    assert 'forgeone_plugin_calls_total{plugin="edge",export="fail",outcome="error"} 1' in lines
    assert 'forgeone_plugin_calls_total{plugin="edge",export="handle",outcome="ok"} 1' in lines
    assert not any('export="ghost"' in line for line in lines)


def test_metrics_only_declared_series_and_every_refusal_counted(env: Env) -> None:
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        assert call(d, "check", b"verdict=allow") == b"3"
        assert call(d, "check", b"verdict=allow") == b"3"
        assert call(d, "check", b"verdict=maybe") == b"0"  # undeclared value
        assert call(d, "check", b"") == b"0"  # the declared label is missing
        assert call(d, "check", b"verdict=allow\nverdict=deny") == b"0"  # repeated
        assert call(d, "check", b"verdict=allow\nzone=eu") == b"0"  # undeclared label
        assert call(d, "set_requests", b"verdict=deny") == b"0"  # set on a counter
        assert call(d, "undeclared") == b"1"
        assert call(d, "observe") == b"3"
        assert call(d, "gauge") == b"3"
        lines = scrape(d)
        denied = [e for e in d.events.seen if e.event.label == "hostcall.denied"]
        assert d.view("edge").state == "running"
    assert 'forgeone_plugin_requests_total{plugin="edge",verdict="allow"} 2.0' in lines
    assert not any('verdict="maybe"' in line or "zone" in line for line in lines)
    assert 'forgeone_plugin_queue{plugin="edge"} 7.5' in lines
    assert 'forgeone_plugin_latency_seconds_bucket{plugin="edge",le="0.1"} 1' in lines
    assert "# TYPE forgeone_plugin_requests_total counter" in lines
    hostcalls = 'forgeone_hostcalls_total{plugin="edge",function="%s",outcome="%s"} %d'
    assert hostcalls % ("metric_add", "ok", 2) in lines
    assert hostcalls % ("metric_add", "invalid", 4) in lines
    assert hostcalls % ("metric_add", "denied", 1) in lines
    assert hostcalls % ("metric_set", "invalid", 1) in lines
    reasons = sorted({(e.details["function"], e.reason) for e in denied})
    assert reasons == [
        ("metric_add", "capability"),
        ("metric_add", "metric_invalid"),
        ("metric_set", "metric_invalid"),
    ]


def test_operator_policy_withholds_metrics(env: Env) -> None:
    configure(env, "[capabilities.edge]\nlog = true")
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        assert call(d, "check", b"verdict=allow") == b"1"
        assert not any("forgeone_plugin_requests" in line for line in scrape(d))
        assert d.events.wait("hostcall.denied", "edge")[0].reason == "capability"


def test_function_listed_but_not_exported_is_refused_at_load(env: Env) -> None:
    with in_process(env) as d:
        drop(env.plugins, "edge.wasm", hooks_plugin(functions=["check", "ghost"]))
        (event,) = d.events.wait("plugin.rejected", "edge")
        assert event.reason == "load_failed"
        assert "manifest function 'ghost' is not exported" in event.message
        assert all(v.state != "running" for v in d.daemon.backend.list_plugins())
        assert 'forgeone_artifacts_rejected_total{reason="load_failed"} 1' in scrape(d)


def test_config_values_defaults_and_secret_never_audited(env: Env) -> None:
    operator_file(env, 'retries = 5\nratio = 1\ntoken = { credential = "edge-token" }\n')
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        assert d.invoke("edge", b"retries") == b"5"
        assert d.invoke("edge", b"ratio") == b"1.0"  # a float key: an int is a fine float
        assert d.invoke("edge", b"endpoint") == b"https://reports.example"  # the default
        assert d.invoke("edge", b"token") == b"s3cr3t-value"
        assert d.invoke("edge", b"undeclared") == b"none"
        (configured,) = d.events.wait("plugin.configured", "edge")
        assert len(configured.details["config_sha256"]) == 64
    audit_text = json.dumps(env.audit_events())
    assert "s3cr3t-value" not in audit_text and "plugin.configured" in audit_text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('retries = "five"\n', "edge.toml: retries: expected int, got 'five'"),
        ("colour = 1\n", "edge.toml: colour: unknown key (not in the manifest)"),
        ('token = "plain"\n', "edge.toml: token: a secret key takes"),
        ('token = { credential = "absent" }\n', "token: credential 'absent' not found"),
        ("retries = [\n", "edge.toml: not valid TOML"),
    ],
)
def test_reload_refuses_a_bad_config_and_keeps_the_running_one(
    env: Env, text: str, message: str
) -> None:
    operator_file(env, "retries = 4\n")
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        assert d.invoke("edge", b"retries") == b"4"
        before = d.view("edge")
        operator_file(env, text)
        report = d.daemon.backend.reload("ops")
        (refused,) = d.events.wait("plugin.config_refused", "edge")
        assert message in refused.message and refused.reason == "plugin_config_invalid"
        assert len(report["config_refused"]) == 1 and message in report["config_refused"][0]
        assert report["restarted"] == []
        assert d.invoke("edge", b"retries") == b"4"  # the config in force, still running
        after = d.view("edge")
        assert (after.state, after.sha256, after.stats.restarts) == (
            "running",
            before.sha256,
            before.stats.restarts,
        )
        assert 'forgeone_plugin_config_refused_total{plugin="edge"} 1' in scrape(d)
        assert "plugin.restarted" not in d.events.labels("edge")


def test_reload_applies_a_changed_config_by_restarting_the_plugin(env: Env) -> None:
    operator_file(env, "retries = 4\n")
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        first = d.events.wait("plugin.configured", "edge")[0].details["config_sha256"]
        operator_file(env, "retries = 9\n")
        report = d.daemon.backend.reload("ops")
        assert report["restarted"] == ["edge"]
        restarted = d.events.wait("plugin.restarted", "edge")[-1]
        assert (restarted.reason, restarted.actor) == ("config_changed", "ops")
        second = d.events.wait("plugin.configured", "edge", count=2)[-1]
        assert second.details["config_sha256"] != first
        assert d.invoke("edge", b"retries") == b"9"
        # an unchanged file: nothing restarts
        assert d.daemon.backend.reload("ops")["restarted"] == []


def test_missing_required_key_refuses_the_version(env: Env) -> None:
    required = {"token": {"type": "string", "secret": True, "required": True}}
    with in_process(env) as d:
        drop(env.plugins, "edge.wasm", hooks_plugin(config=required))
        (rejected,) = d.events.wait("plugin.rejected", "edge")
        assert "edge.toml: token: required key has no value" in rejected.message
        assert rejected.reason == "plugin_config_invalid"
        assert all(v.state != "running" for v in d.daemon.backend.list_plugins())
        assert 'forgeone_artifacts_rejected_total{reason="plugin_config_invalid"} 1' in scrape(d)


def test_forgeonectl_invoke_fn_through_the_daemon(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env):
        cli = ["--socket", env.socket, "invoke", "edge"]
        assert main([*cli, "--fn", "check", "--input", "verdict=deny"]) == 0
        assert capsys.readouterr().out == "3"
        assert main([*cli, "--fn", "fail"]) == 11  # an application error: output + status
        assert capsys.readouterr().out == "partial"
        code = main([*cli, "--fn", "ghost"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and "has no function 'ghost'" in err[0]
        assert main([*cli, "--input", "retries"]) == 0  # without --fn: handle, as before
        assert capsys.readouterr().out == "3"
    calls = [e for e in env.audit_events() if e["event"] == "control.action"]
    assert [c["details"]["function"] for c in calls] == ["check", "fail", "ghost"]
    assert [c["reason"] for c in calls] == ["ok", "application_error", "bad_request"]


@pytest.mark.parametrize(
    ("over", "reason", "text"),
    [
        ({"metrics": {"up": {"type": "gauge"}}}, "manifest_invalid", "metrics.up"),
        ({"functions": ["handle"]}, "manifest_invalid", "'functions'"),
        ({"config": {"k": {"type": "int", "default": "x"}}}, "manifest_invalid", "config.k"),
        ({"functions": [*FUNCTIONS, "ghost"]}, "load_failed", "'ghost' is not exported"),
    ],
)
def test_a_bad_new_version_leaves_the_running_one_serving(
    env: Env, over: dict[str, object], reason: str, text: str
) -> None:
    drop(env.plugins, "edge.wasm", hooks_plugin())
    with in_process(env) as d:
        assert call(d, "check", b"verdict=allow") == b"3"
        before = d.view("edge")
        drop(env.plugins, "edge-2.wasm", unchecked_hooks_plugin("2.0.0", **over))
        # an invalid manifest names no plugin (its name is not trusted): the file is refused
        named = None if reason == "manifest_invalid" else "edge"
        (rejected,) = d.events.wait("plugin.rejected", named, reason=reason)
        assert text in rejected.message
        after = d.view("edge")
        assert (after.version, after.sha256, after.state) == ("1.0.0", before.sha256, "running")
        assert call(d, "check", b"verdict=allow") == b"3"
        lines = scrape(d)
        assert f'forgeone_artifacts_rejected_total{{reason="{reason}"}} 1' in lines
        assert 'forgeone_plugin_requests_total{plugin="edge",verdict="allow"} 2.0' in lines
