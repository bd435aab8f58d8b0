"""Issue 12, item 1, replayed through the real daemon: a trust store others can change.

``chmod 666 trusted.d/test.pub`` (or ``chmod 777 trusted.d``), a stranger's key put into it,
a routine reload: the reload is refused naming the path, the running set and trust stay, the
stranger's plugin never runs, and ``config.insecure`` is audited. A symlinked key is refused
by name instead of silently dropping every plugin it signed. A start is refused outright.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_kit import REPO, Env, InProcess, drop, in_process, manifest, plugin, plugin_wat

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli.devtools import make_signed_plugin, test_key
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.run import Daemon as RealDaemon
from forgeoned.errors import InsecurePathError

NOBODY = 65534
STRANGER = test_key(66)  # "nobody"'s own signing key
EX_CONFIG = 78


def stranger_plugin() -> bytes:
    return make_signed_plugin(plugin_wat("evil@6.6.6"), manifest("evil", "6.6.6"), STRANGER)


def client(d: InProcess) -> ControlClient:
    return ControlClient(d.env.socket, timeout=60)


def refused_reload(d: InProcess, path: Path) -> str:
    """Reload through the control socket (as forgeonectl does): refused, naming ``path``; the
    client rebuilds the daemon's error from its code (``insecure_permissions``)."""
    with client(d) as c, pytest.raises(InsecurePathError) as caught:
        c.reload()
    message = str(caught.value)
    assert str(path) in message, message
    return message


def audited(env: Env) -> list[object]:
    """The audit events, without the signed checkpoints the log writes when it closes."""
    return [e["event"] for e in env.audit_events() if e["event"] != "audit.checkpoint"]


def insecure_events(env: Env) -> list[dict[str, object]]:
    return [e for e in env.audit_events() if e["event"] == "config.insecure"]


def test_a_world_writable_key_overwritten_by_a_stranger_is_refused_on_reload(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    key = env.root / "trusted.d/test.pub"
    with in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
        key.chmod(0o666)
        key.write_bytes(public_key_bytes(STRANGER.public_key))  # what nobody could now do
        drop(env.plugins, "evil.wasm", stranger_plugin())
        message = refused_reload(d, key)
        assert "writable by group and others (mode 0666)" in message
        assert f"chmod go-w {key}" in message
        # The running set and the running trust are kept: hello answers, evil never runs.
        assert d.invoke("hello") == b"hello@1.0.0:x"
        d.sync()
        assert "evil" not in d.parts.plugins
        rejected = d.events.wait("plugin.rejected", reason="untrusted_key")[0]
        assert rejected.details["file"] == "evil.wasm"
        failed = d.events.wait("daemon.reload_failed")[-1]
        assert failed.reason == "insecure_permissions"
    (event,) = insecure_events(env)
    assert event["reason"] == "insecure_permissions"
    assert str(key) in str(event["message"])
    assert event["details"]["paths"] == [str(key)]  # type: ignore[index]


def test_a_world_writable_trust_dir_with_a_strangers_key_file_is_refused(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    trusted = env.root / "trusted.d"
    with in_process(env) as d:
        trusted.chmod(0o777)
        planted = trusted / "nobody.pub"
        planted.write_bytes(public_key_bytes(STRANGER.public_key))
        os.chown(planted, NOBODY, NOBODY)
        drop(env.plugins, "evil.wasm", stranger_plugin())
        message = refused_reload(d, trusted)
        assert str(planted) in message and f"owned by uid {NOBODY}" in message
        assert d.invoke("hello") == b"hello@1.0.0:x"
        d.sync()
        assert "evil" not in d.parts.plugins
        # Fixed as the message says: the next reload goes through, without the stranger.
        planted.unlink()
        trusted.chmod(0o755)
        with client(d) as c:
            c.reload()
        assert d.invoke("hello") == b"hello@1.0.0:x"
    assert len(insecure_events(env)) == 1


def test_a_symlinked_key_is_refused_by_name_and_nothing_is_withdrawn(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    key = env.root / "trusted.d/test.pub"
    with in_process(env) as d:
        kept = env.root / "etc/test.pub"
        key.rename(kept)
        key.symlink_to(kept)
        message = refused_reload(d, key)
        assert "symbolic link" in message
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.view("hello").state == "running"
        assert "plugin.removed" not in d.events.labels("hello")
        assert "plugin.rejected" not in d.events.labels("hello")
    assert str(key) in str(insecure_events(env)[0]["message"])


def test_a_start_is_refused_with_the_path_and_audited(tmp_path: Path) -> None:
    env = Env(tmp_path)
    key = env.root / "trusted.d/test.pub"
    key.chmod(0o646)
    with pytest.raises(InsecurePathError, match="writable by others"):
        RealDaemon(load_config(env.config))
    (event,) = insecure_events(env)
    assert str(key) in str(event["message"])
    assert audited(env) == ["config.insecure"]  # nothing started


def test_the_daemon_process_exits_ex_config_naming_the_file(tmp_path: Path) -> None:
    env = Env(tmp_path)
    os.chown(env.config, NOBODY, NOBODY)  # a config file another user may rewrite
    proc = subprocess.run(
        [sys.executable, "-m", "forgeoned.daemon", "--config", str(env.config)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert f"forgeoned: refusing files others could change: {env.config}: owned by uid" in (
        proc.stderr
    )
    assert f"chown root {env.config}" in proc.stderr
    assert audited(env) == ["config.insecure"]


def test_development_mode_warns_and_runs(tmp_path: Path) -> None:
    """``make run`` in a checkout with a umask of 002: group-writable files still run."""
    env = Env(tmp_path, mode="development")
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    key = env.root / "trusted.d/test.pub"
    key.chmod(0o664)
    with in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
        installed = d.events.wait("plugin.installed", "hello")[0]
        assert installed.details["signers"] == ["test"]  # verified by the key, not unsigned
    (event,) = insecure_events(env)
    assert str(event["message"]).startswith("INSECURE (development mode): ")


def test_a_plugin_config_others_can_write_is_refused_on_reload(tmp_path: Path) -> None:
    """plugins.conf.d is held to the config file's rule: a per-plugin file others can write
    makes a reload refuse (naming it), the running plugin and its config stay."""
    env = Env(tmp_path)
    conf_d = env.root / "etc/plugins.conf.d"
    conf_d.mkdir(parents=True)
    env.write_config('plugin_config_dir = "etc/plugins.conf.d"\n')
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
        stray = conf_d / "hello.toml"
        stray.write_text("# anyone could write this\n")
        stray.chmod(0o666)
        message = refused_reload(d, stray)
        assert f"chmod go-w {stray}" in message
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.events.wait("daemon.reload_failed")[-1].reason == "insecure_permissions"
    (event,) = insecure_events(env)
    assert event["details"]["paths"] == [str(stray)]  # type: ignore[index]
