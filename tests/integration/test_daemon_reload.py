"""What a reload applies and what it says (issue 17, item 1), through the real daemon.

A new ``[[control.bindings]]`` entry authorises at once (a real caller of another uid); a
changed capability policy restarts exactly the plugins whose capabilities change, audited;
keys that only a restart applies are named exactly, in the answer and at warning priority;
the answer lists the keys trusted now.
"""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Iterator

import pytest
from daemon_kit import KEY, Env, drop, in_process, manifest, plugin, plugin_wat
from nobody_kit import NOBODY, as_nobody, shared_tmp

from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli.devtools import make_signed_plugin, test_key

VIEWER_FOR_NOBODY = (
    f'[[control.bindings]]\nname = "nobody-views"\nuid = {NOBODY}\nroles = ["viewer"]'
)


@pytest.fixture
def env() -> Iterator[Env]:
    with shared_tmp() as root:  # nobody must be able to reach the socket
        e = Env(root)
        open_socket(e)
        drop(e.plugins, "hello.wasm", plugin("hello", "1.0.0"))
        yield e


def open_socket(env: Env) -> None:
    """The socket mode 0666, so that the authorisation policy is what decides."""
    text = env.config.read_text().replace("[control]\n", '[control]\nmode = "0666"\n')
    env.config.write_text(text)


def rewrite(env: Env, extra: str) -> None:
    env.write_config(extra)
    open_socket(env)


def status_as_nobody(path: str) -> int:
    def attack() -> int:
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.connect(path)
        conn.request("GET", "/v1/plugins")
        return conn.getresponse().status

    with as_nobody(attack) as status:
        return int(status)


def test_a_new_control_binding_authorises_at_once(env: Env) -> None:
    with in_process(env) as d:
        assert status_as_nobody(env.socket) == 403
        rewrite(env, VIEWER_FOR_NOBODY)
        report = d.daemon.backend.reload("uid=0(root)")
        assert report["applied"] == ["control.policy"]
        assert report["restart_required"] == []
        assert status_as_nobody(env.socket) == 200
        # and taken away again, as promptly
        rewrite(env, "")
        assert d.daemon.backend.reload("uid=0(root)")["applied"] == ["control.policy"]
        assert status_as_nobody(env.socket) == 403


def with_caps(name: str, caps: dict[str, object]) -> bytes:
    text = plugin_wat(f"{name}@1.0.0")
    return make_signed_plugin(text, manifest(name, "1.0.0", capabilities=caps), KEY)


def test_a_capability_change_restarts_exactly_the_plugins_it_changes(env: Env) -> None:
    drop(env.plugins, "vault.wasm", with_caps("vault", {"log": True, "secrets": ["api-token"]}))
    with in_process(env) as d:
        hosts = d.parts.plugins
        before = {name: hosts.host(name).current for name in ("hello", "vault")}
        assert d.view("vault").capabilities["secrets"] == []  # the default policy grants none
        rewrite(env, '[capabilities.vault]\nlog = true\nsecrets = ["api-token"]')
        report = d.daemon.backend.reload("uid=0(root)")
        assert report["applied"] == ["capabilities.vault"]
        assert report["restarted"] == ["vault"]
        [restarted] = d.events.wait("plugin.restarted", "vault")
        assert (restarted.actor, restarted.reason) == ("uid=0(root)", "capabilities_changed")
        assert hosts.host("vault").current is not before["vault"]
        assert hosts.host("hello").current is before["hello"]  # same capabilities: untouched
        assert d.view("vault").capabilities["secrets"] == ["api-token"]
        assert d.invoke("vault") == b"vault@1.0.0:x"
        # Reloading the same file again restarts nothing.
        assert d.daemon.backend.reload("uid=0(root)")["restarted"] == []
        assert len(d.events.wait("plugin.restarted", "vault")) == 1


def test_keys_that_need_a_restart_are_named_exactly_and_warned_about(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with in_process(env) as d, caplog.at_level(logging.INFO, logger="forgeoned"):
        rewrite(env, "call_hold_timeout_s = 9\nshutdown_timeout_s = 5\n[compile]\nworkers = 1")
        report = d.daemon.backend.reload("uid=0(root)")
        assert report["restart_required"] == ["call_hold_timeout_s", "compile.workers"]
        assert report["applied"] == ["shutdown_timeout_s"]
        config = d.daemon.config
        assert (config.shutdown_timeout_s, config.call_hold_timeout_s) == (5, 30)
        [reloaded] = d.events.wait("daemon.reloaded")
        assert "applied only on restart: call_hold_timeout_s, compile.workers" in reloaded.message
        assert reloaded.details["restart_required"] == ["call_hold_timeout_s", "compile.workers"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("call_hold_timeout_s, compile.workers" in r.getMessage() for r in warnings)


def test_the_answer_lists_the_keys_trusted_now(env: Env) -> None:
    with in_process(env) as d:
        first = d.daemon.backend.reload("uid=0(root)")
        assert [k["name"] for k in first["trusted_keys"]] == ["test"]
        assert first["trusted_keys"][0]["public_key"] == KEY.public_key.hex()
        assert first["keys_added"] == [] and first["keys_removed"] == []
        (env.root / "trusted.d/team.pub").write_bytes(public_key_bytes(test_key(8).public_key))
        second = d.daemon.backend.reload("uid=0(root)")
        assert [k["name"] for k in second["trusted_keys"]] == ["team", "test"]
        assert second["keys_added"] == ["team"]
        [reloaded] = d.events.wait("daemon.reloaded", count=2)[1:]
        assert "trusted keys: team (SHA256:" in reloaded.message


def test_forgeonectl_reload_prints_the_account(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    from forgeoned.cli import main

    with in_process(env):
        rewrite(env, "call_hold_timeout_s = 9")
        assert main(["--socket", env.socket, "reload"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "reloaded"
    waiting = "changed, applied only on restart (systemctl restart forgeoned): call_hold_timeout_s"
    assert waiting in out
    assert any(line.startswith("trusted keys: test SHA256:") for line in out)


def test_a_refused_reload_exits_non_zero(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from forgeoned.cli import main

    with in_process(env) as d:
        env.config.write_text(env.config.read_text() + "bogus_key = 1\n")
        assert main(["--socket", env.socket, "reload"]) != 0
        [failed] = d.events.wait("daemon.reload_failed")
        assert failed.reason == "config_invalid" and "bogus_key" in failed.message
        assert d.invoke("hello") == b"hello@1.0.0:x"
    assert "bogus_key: unknown key" in capsys.readouterr().err


def test_a_reload_reports_a_bad_file_again_only_if_its_verdict_changed(env: Env) -> None:
    """A refused reload keeps the trust in force: a file it already rejected is not judged
    again. A reload that applies judges every file again, and reports a rejected one again
    only if the reason changed (a rejection is reported once per version of a file)."""
    from forgeoned.cli import main

    def rejected() -> int:
        return len([e for e in d.events.seen if e.event.label == "plugin.rejected"])

    with in_process(env) as d:
        drop(env.plugins, "evil.wasm", b"\0asm not a module")
        [first] = d.events.wait("plugin.rejected", count=1)
        assert first.details["file"] == "evil.wasm"
        good = env.config.read_text()
        env.config.write_text(good + "bogus_key = 1\n")
        assert main(["--socket", env.socket, "reload"]) != 0
        d.events.wait("daemon.reload_failed")
        # each reload's answer comes after its rescan: a second report would be here by now
        assert rejected() == 1
        env.config.write_text(good)
        assert main(["--socket", env.socket, "reload"]) == 0
        assert rejected() == 1
        assert d.daemon.parts.stats.rejected == {"malformed": 1}
        # signed by a key the trust store does not hold: rejected, reported once ...
        text = plugin_wat("other@1.0.0")
        other = manifest("other", "1.0.0", capabilities={"log": True})
        drop(env.plugins, "other.wasm", make_signed_plugin(text, other, test_key(9)))
        d.events.wait("plugin.rejected", count=2)
        # ... and judged again by a reload that trusts its key: it runs now
        (env.root / "trusted.d/team.pub").write_bytes(public_key_bytes(test_key(9).public_key))
        assert main(["--socket", env.socket, "reload"]) == 0
        d.events.wait("plugin.installed", plugin="other")
        assert d.invoke("other") == b"other@1.0.0:x"
        assert rejected() == 2
        assert d.invoke("hello") == b"hello@1.0.0:x"
