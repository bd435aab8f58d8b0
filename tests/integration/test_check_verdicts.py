"""``forgeonectl verify``, ``check``, ``run --config`` and a real daemon give the same verdict
on the same artifacts: a good one, one missing an export, one with a bad import, one asking for a
capability the operator does not grant (loaded; its calls denied), one over a ceiling, one
signed by an untrusted key, one by a key out of its scope, one by a key whose trust expired,
and a downgrade below the rollback floor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, Env, drop, in_process, manifest, plugin
from hooks_wat import hooks_plugin
from http_kit import WAT as HTTP_WAT

from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli import main
from forgeoned.cli.devtools import make_signed_plugin, test_key
from forgeoned.cli.exitcodes import OK, REJECTED


def _run(capsys: pytest.CaptureFixture[str], env: Env, path: Path) -> tuple[int, str]:
    code, out, err = _cli(capsys, "run", str(path), "--config", str(env.config), "--json")
    return code, out + err


MIB = 1 << 20


def _wat(imports: str = "", omit: tuple[str, ...] = ()) -> str:
    return f"""(module {imports}
  (memory (export "memory") 1)
  {lifecycle_exports(omit=omit)}
  {ALLOC}
  (func (export "handle") (param i32 i32) (result i32) i32.const 0))"""


def artifacts() -> dict[str, tuple[bytes, str | None]]:
    """file name -> (bytes, the daemon's rejection reason or None when it loads)."""
    bad_import = '(import "env" "abort" (func (param i32) (result i32)))'
    secret = '(import "forgeone" "secret_get" (func (param i32 i32 i32 i32) (result i32)))'
    return {
        "good.wasm": (plugin("good", "2.0.0"), None),
        "nounload.wasm": (
            make_signed_plugin(_wat(omit=("unload",)), manifest("nounload", "1.0.0"), KEY),
            "load_failed",
        ),
        "badimport.wasm": (
            make_signed_plugin(_wat(bad_import), manifest("badimport", "1.0.0"), KEY),
            "load_failed",
        ),
        "capless.wasm": (
            make_signed_plugin(
                _wat(secret),
                manifest("capless", "1.0.0", capabilities={"secrets": ["api-token"]}),
                KEY,
            ),
            None,
        ),
        "greedy.wasm": (
            plugin("greedy", "1.0.0", limits={"memory_bytes": 64 * MIB}),
            "over_ceiling",
        ),
        "stranger.wasm": (
            make_signed_plugin(_wat(), manifest("stranger", "1.0.0"), test_key(99)),
            "untrusted_key",
        ),
        "outscope.wasm": (  # NARROW may sign billing-* only
            make_signed_plugin(_wat(), manifest("outscope", "1.0.0"), NARROW),
            "out_of_scope",
        ),
        "lapsed.wasm": (  # LAPSED's trust ended in 2020
            make_signed_plugin(_wat(), manifest("lapsed", "1.0.0"), LAPSED),
            "expired",
        ),
    }


NARROW, LAPSED = test_key(60), test_key(61)
TRUST = """[trust.scopes]
narrow = ["billing-*"]
[trust.expires]
lapsed = 2020-01-01T00:00:00Z"""


def _trust_more(env: Env) -> None:
    """Two more trusted keys: one scoped to other plugins, one whose trust expired."""
    for name, key in (("narrow", NARROW), ("lapsed", LAPSED)):
        (env.root / f"trusted.d/{name}.pub").write_bytes(public_key_bytes(key.public_key))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _check(capsys: pytest.CaptureFixture[str], env: Env, path: Path) -> dict[str, Any]:
    code, out, _ = _cli(capsys, "check", str(path), "--config", str(env.config), "--json")
    report: dict[str, Any] = json.loads(out)
    assert code == (OK if report["accepted"] else REJECTED)
    return report


def _verify(capsys: pytest.CaptureFixture[str], env: Env, path: Path) -> tuple[int, str]:
    trust = str(env.root / "trusted.d")
    code, out, err = _cli(
        capsys, "verify", "--trust", trust, "--config", str(env.config), str(path)
    )
    return code, out + err


def test_verify_check_and_the_daemon_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = Env(tmp_path)
    _trust_more(env)
    env.write_config(f"{TRUST}\n[limits]\nmemory_bytes = {32 * MIB}")
    staged = tmp_path / "staged"
    staged.mkdir()
    expected = artifacts()
    for filename, (data, _) in expected.items():
        (staged / filename).write_bytes(data)
    # before any daemon ran: check and verify give the verdicts the daemon is about to give
    offline: dict[str, tuple[str | None, int]] = {}
    for filename, (_, reason) in expected.items():
        report = _check(capsys, env, staged / filename)
        assert report["reason"] == reason, (filename, report)
        code, text = _verify(capsys, env, staged / filename)
        assert code == (OK if reason is None else REJECTED), (filename, text)
        if reason is None:
            assert text.startswith("trusted and loadable: ")
        else:  # one line naming why, never the "trusted" verdict issue 14 found
            assert text.startswith("forgeonectl: ") and text.count("\n") == 1, (filename, text)
            assert "trusted and loadable" not in text, text
        offline[filename] = (report["reason"], code)
        code, text = _run(capsys, env, staged / filename)
        assert code == (OK if reason is None else REJECTED), (filename, text)
        if reason is not None:
            assert text.startswith("forgeonectl: "), text
    capless = _check(capsys, env, staged / "capless.wasm")
    assert [f["code"] for f in capless["findings"]] == ["capability_not_granted"]
    assert "secrets:api-token" in capless["findings"][0]["message"]
    code, text = _run(capsys, env, staged / "capless.wasm")
    ran = json.loads(text)
    assert code == OK and ran["fault"] is None and ran["signers"] == ["test"]

    for filename, (data, _) in expected.items():
        drop(env.plugins, filename, data)
    with in_process(env) as d:
        for filename, (_, reason) in expected.items():
            name = filename.removesuffix(".wasm")
            if reason is None:
                d.events.wait("plugin.installed", name)
            else:
                [event] = d.events.wait("plugin.rejected", name)
                assert event.reason == reason, (filename, event)
        assert d.invoke("good") == b"good@2.0.0:x"
        running = {n for n in ("good", "capless") if n in d.parts.plugins}
        assert running == {"good", "capless"}
        # now a downgrade: the daemon activated good 2.0.0, so 1.0.0 is below the floor
        old = plugin("good", "1.0.0")
        (staged / "old.wasm").write_bytes(old)
        report = _check(capsys, env, staged / "old.wasm")
        assert (report["accepted"], report["reason"]) == (False, "downgrade")
        code, text = _verify(capsys, env, staged / "old.wasm")
        assert code == REJECTED and "downgrade" in text
        code, text = _run(capsys, env, staged / "old.wasm")
        assert code == REJECTED and "downgrade" in text
        drop(env.plugins, "good.wasm", old)
        [event] = d.events.wait("plugin.rejected", "good")
        assert event.reason == "downgrade"
        assert d.invoke("good") == b"good@2.0.0:x"  # nothing running changed


def test_check_refuses_what_the_daemon_refuses_to_start_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = Env(tmp_path)
    path = tmp_path / "good.wasm"
    path.write_bytes(plugin("good", "1.0.0"))
    (env.root / "trusted.d/test.pub").chmod(0o666)  # anyone could swap the key
    code, out, err = _cli(capsys, "check", str(path), "--config", str(env.config))
    assert code != OK and out == ""
    assert err.startswith("forgeonectl: ") and "test.pub" in err


def test_check_names_the_origins_and_metrics_the_operator_does_not_grant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outbound origins and plugin metrics are capabilities too: ``check`` warns about each one
    the daemon will not give (its calls answer -2), exactly those."""
    env = Env(tmp_path)
    granted, refused = "https://api.example:443", "https://other.example:443"
    env.write_config(f'[capabilities.edge]\nlog = true\n[http.plugins.web]\nallow = ["{granted}"]')
    web = {"name": "web", "version": "1.0.0", "abi": 1,
           "capabilities": {"http": [granted, refused]}}  # fmt: skip
    files = {"web.wasm": make_signed_plugin(HTTP_WAT, web, KEY), "edge.wasm": hooks_plugin()}
    found = {}
    for filename, data in files.items():
        (tmp_path / filename).write_bytes(data)
        report = _check(capsys, env, tmp_path / filename)
        assert report["accepted"], report
        found[filename] = [(f["code"], f["message"].split(":", 1)[0]) for f in report["findings"]]
    assert found["web.wasm"] == [("capability_not_granted", "http")]
    assert refused in _check(capsys, env, tmp_path / "web.wasm")["findings"][0]["message"]
    assert found["edge.wasm"] == [("capability_not_granted", "metrics")]
    for filename, data in files.items():
        drop(env.plugins, filename, data)
    with in_process(env) as d:  # the daemon loads both, without what check named
        d.events.wait("plugin.installed", "web")
        d.events.wait("plugin.installed", "edge")
        assert d.view("web").capabilities["http"] == [granted]
        assert d.daemon.backend.invoke("edge", b"verdict=allow", None, "check") == b"1"  # -2
