"""Issue 17 replayed under a real systemd 252 with the package: a reload that applies a new
control binding and a capability change (and names what waits for a restart), a refused
reload that is its own event and fails `systemctl reload`, and the daemon's CRITICAL line
for a broken audit chain at priority crit (`journalctl -u forgeoned -p crit`).

One container (module fixture ``served``); the check that breaks the audit chain comes last.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from nspawn_harness import Container, wait_until
from system_admin import CONFIG, SamplePlugin, cursor, events, status, unit_property

from forgeoned.cli.exitcodes import FORBIDDEN, UNREACHABLE

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


@pytest.fixture
def config_restored(served: Container) -> Iterator[None]:
    """Whatever a check appends to the config is gone afterwards (and reloaded away)."""
    original = served.run("cat", CONFIG).stdout
    yield
    served.run("cp", served.put("forgeoned.toml", original.encode()), CONFIG)
    served.run("systemctl", "reload", "forgeoned", timeout=120)


def append(container: Container, text: str) -> None:
    container.sh(f"cat {container.put('extra.toml', text.encode())} >> {CONFIG}")


@pytest.mark.usefixtures("config_restored")
def test_a_new_binding_applies_on_systemctl_reload(served: Container) -> None:
    served.run("useradd", "--no-create-home", "-G", "forgeoned", "bob")
    refused = served.run("forgeonectl", "status", user="bob", check=False)
    assert refused.returncode == FORBIDDEN, refused.stderr
    append(served, '\n[[control.bindings]]\nuser = "bob"\nroles = ["viewer"]\n')
    pid = unit_property(served, "MainPID")
    served.run("systemctl", "reload", "forgeoned", timeout=120)
    assert served.run("forgeonectl", "status", user="bob").returncode == 0
    assert unit_property(served, "MainPID") == pid  # no restart was needed


def test_a_user_outside_the_group_is_told_what_to_do(served: Container) -> None:
    served.run("useradd", "--no-create-home", "carol")
    refused = served.run("forgeonectl", "status", user="carol", check=False)
    assert refused.returncode == UNREACHABLE
    assert "join the group forgeoned" in refused.stderr and "log out and in" in refused.stderr


@pytest.mark.usefixtures("config_restored")
def test_a_capability_change_restarts_the_plugin_and_restart_keys_are_named(
    served: Container, sample_plugin: SamplePlugin
) -> None:
    mark = cursor(served)
    # The Rust sample asks for the secret api-token (the default policy grants none); the
    # fallback plugin only for log, so take that away from it instead.
    grant = 'log = true\nsecrets = ["api-token"]' if sample_plugin.rust else "log = false"
    append(served, f"\n[capabilities.sample]\n{grant}\n")
    served.sh(f"sed -i 's/^listen = .*/listen = \"127.0.0.1:9465\"/' {CONFIG}")
    out = served.run("forgeonectl", "reload", timeout=120).stdout
    assert "restarted for new capabilities: sample" in out, out
    assert "applied only on restart (systemctl restart forgeoned): metrics.listen" in out
    restarted = wait_until(
        "plugin.restarted in the journal",
        lambda: [e for e in events(served, mark) if e["FORGEONE_EVENT"] == "plugin.restarted"],
        30,
    )
    assert restarted[0]["FORGEONE_REASON"] == "capabilities_changed"
    assert restarted[0]["FORGEONE_ACTOR"] == "uid=0(root)"
    if sample_plugin.rust:
        shown = json.loads(served.run("forgeonectl", "show", "sample", "--json").stdout)
        assert shown["capabilities"]["secrets"] == ["api-token"]
    # (journalctl 252 returns nothing for -u with --after-cursor: match the identifier)
    warning = served.run(
        "journalctl", "SYSLOG_IDENTIFIER=forgeoned", "-p", "warning", f"--after-cursor={mark}",
        "-o", "cat",
    ).stdout  # fmt: skip
    assert "applied only on restart (systemctl restart forgeoned): metrics.listen" in warning
    assert status(served)["sample"]["state"] == "running"


@pytest.mark.usefixtures("config_restored")
def test_a_refused_reload_fails_and_is_its_own_event(served: Container) -> None:
    mark = cursor(served)
    append(served, "bogus_key = 1\n")
    assert served.run("systemctl", "reload", "forgeoned", timeout=120, check=False).returncode
    assert served.run("forgeonectl", "reload", timeout=120, check=False).returncode != 0
    failed = wait_until(
        "daemon.reload_failed in the journal",
        lambda: [e for e in events(served, mark) if e["FORGEONE_EVENT"] == "daemon.reload_failed"],
        30,
    )
    assert failed[0]["FORGEONE_REASON"] == "config_invalid"
    assert failed[0]["PRIORITY"] == "3"
    assert not [e for e in events(served, mark) if e["FORGEONE_EVENT"] == "daemon.reloaded"]
    explained = served.run(
        "journalctl", "SYSLOG_IDENTIFIER=forgeoned", "-x", f"--after-cursor={mark}"
    )
    assert "forgeoned refused to reload its configuration (config_invalid)" in explained.stdout
    assert unit_property(served, "ActiveState") == "active"


def test_a_broken_audit_chain_shows_in_journalctl_p_crit(served: Container) -> None:
    """Last: the chain stays broken in this container."""
    assert (
        "AUDIT CHAIN BROKEN"
        not in served.run("journalctl", "-u", "forgeoned", "-p", "crit", "-o", "cat").stdout
    )
    served.run("systemctl", "stop", "forgeoned", timeout=180)
    served.run(
        "python3",
        "-c",
        "import pathlib; p = pathlib.Path('/var/lib/forgeoned/audit/audit-000001.jsonl'); "
        "d = p.read_bytes(); p.write_bytes(d.replace(b'plugins restored', b'plugins restoreD', 1))",
    )
    served.run("systemctl", "start", "forgeoned", timeout=180)
    line = wait_until(
        "the chain-broken line at priority crit",
        lambda: [
            text
            for text in served.run(
                "journalctl", "-u", "forgeoned", "-p", "crit", "-o", "cat"
            ).stdout.splitlines()
            if "AUDIT CHAIN BROKEN" in text
        ],
        60,
    )
    assert "investigate now" in line[0]
    assert served.run("forgeonectl", "audit", "verify", check=False).returncode == 9
