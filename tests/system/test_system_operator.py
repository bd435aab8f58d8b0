"""Issue 17 replayed under a real systemd 252 with the package: a reload that applies a new
control binding and a capability change (and names what waits for a restart), a refused
reload that is its own event and fails `systemctl reload`, rejected files and uploads that
name their file everywhere an administrator looks, the daemon's CRITICAL line for a broken
audit chain at priority crit (`journalctl -u forgeoned -p crit`), and the guide's recovery
from it, run as written there.

One container (module fixture ``served``); the check that breaks the audit chain comes last.
"""

from __future__ import annotations

import json
import tomllib
import urllib.parse
from collections.abc import Iterator

import pytest
from doc_steps import OPERATIONS, marked_blocks
from nspawn_harness import Container, wait_until
from system_admin import (
    CONFIG,
    PLUGINS_D,
    SamplePlugin,
    cursor,
    events,
    install_sudo,
    status,
    unit_property,
)

from forgeoned.cli.exitcodes import FORBIDDEN, REJECTED, UNREACHABLE

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


def rejected_total(container: Container) -> float:
    """forgeone_artifacts_rejected_total{reason="unsigned"} as /metrics shows it (no curl in
    the bare container: the package's Python asks)."""
    listen = tomllib.loads(container.run("cat", CONFIG).stdout)["metrics"]["listen"]
    url = urllib.parse.urlunsplit(("http", listen, "/metrics", "", ""))
    text = container.run(
        "python3",
        "-c",
        f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())",
    ).stdout
    name = 'forgeone_artifacts_rejected_total{reason="unsigned"} '
    return sum(float(line[len(name) :]) for line in text.splitlines() if line.startswith(name))


def test_rejections_name_their_file_in_journal_status_metrics_and_report(
    served: Container, sample_plugin: SamplePlugin
) -> None:
    mark = cursor(served)
    before = rejected_total(served)
    module = served.put("plugin.module.wasm", sample_plugin.wasm)
    manifest = served.put("evil-1.0.0.toml", sample_plugin.manifest_for("1.0.0", "evil").encode())
    served.run("forgeonectl", "package", module, "--manifest", manifest, "-o", "/root/evil.wasm")
    # The operator forgot to sign it and dropped it in the way the guide shows.
    served.run("install", "-m", "0644", "/root/evil.wasm", f"{PLUGINS_D}/.evil.wasm")
    served.run("mv", f"{PLUGINS_D}/.evil.wasm", f"{PLUGINS_D}/evil.wasm")
    try:
        [dropped] = wait_until(
            "the dropped file's plugin.rejected",
            lambda: [e for e in events(served, mark) if e["FORGEONE_EVENT"] == "plugin.rejected"],
            60,
        )
        assert (dropped["FORGEONE_FILE"], dropped["FORGEONE_REASON"]) == ("evil.wasm", "unsigned")
        assert (dropped["FORGEONE_PLUGIN"], dropped["FORGEONE_VERSION"]) == ("evil", "1.0.0")
        assert "evil.wasm: module is not signed" in dropped["MESSAGE"]
        # (no --after-cursor: journalctl 252 then finds nothing when the cursor's entry does
        # not match; nothing before this test names evil.wasm)
        explained = served.run("journalctl", "FORGEONE_FILE=evil.wasm", "-x").stdout
        assert "artifact evil.wasm (plugin evil 1.0.0) rejected (unsigned)" in explained
        assert "@FORGEONE" not in explained
        listed = served.run("forgeonectl", "status", "--all").stdout
        row = next(line for line in listed.splitlines() if line.startswith("evil.wasm"))
        assert "unsigned" in row, listed
        assert "evil" not in status(served)

        # The same file uploaded with forgeonectl install: refused, and a rejection like it.
        upload = served.run("forgeonectl", "install", "/root/evil.wasm", check=False)
        assert upload.returncode == REJECTED and "not signed" in upload.stderr, upload.stderr
        rejected = wait_until(
            "the upload's plugin.rejected",
            lambda: [
                e
                for e in events(served, mark)
                if e["FORGEONE_EVENT"] == "plugin.rejected"
                and '"upload": true' in e.get("FORGEONE_DETAILS", "")
            ],
            30,
        )
        assert rejected[0]["FORGEONE_FILE"] == "evil.wasm"
        assert rejected[0]["FORGEONE_ACTOR"] == "uid=0(root)"
        # /metrics renders at most once a second (a cached page in between): wait for it.
        counted = wait_until(
            "both rejections in /metrics",
            lambda: (n := rejected_total(served)) >= before + 2 and [n],
            30,
        )
        assert counted == [before + 2]
        report = json.loads(
            served.run("forgeonectl", "compliance", "report", "--format", "json").stdout
        )
        found = [(r["plugin"], r["file"], r["reason"]) for r in report["rejections"]]
        assert found.count(("evil", "evil.wasm", "unsigned")) == 2, found
        if sample_plugin.rust:  # the sample logs "sample start": its line names it
            lines = served.run("journalctl", "-u", "forgeoned", "-o", "cat").stdout.splitlines()
            assert "sample: sample start" in lines
    finally:
        served.run("rm", "-f", f"{PLUGINS_D}/evil.wasm")


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

    # docs/operations.md, "When the audit chain breaks": keep the evidence, then re-anchor,
    # as written there. The first block's `audit verify` exits 9 (that is what it shows), so
    # that block runs without -e; the re-anchor block, ending with `audit verify`, with -e.
    blocks = marked_blocks(OPERATIONS, "system-test: chain-recovery")
    assert list(blocks) == ["evidence", "re-anchor"]
    install_sudo(served)
    served.run("mkdir", "-p", "/root/recovery")
    script = f"cd /root/recovery\n{blocks['evidence'].text}\nset -e\n{blocks['re-anchor'].text}"
    done = served.run("sh", "-c", script, timeout=300, check=False)
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    assert "AUDIT CHAIN BROKEN" not in done.stdout
    kept = served.sh("ls -d /var/lib/forgeoned/audit.broken-* /root/forgeoned-audit-*").stdout
    assert len(kept.split()) == 2, kept
    assert served.run("forgeonectl", "audit", "verify").returncode == 0
    # The re-anchor is in the new chain: the gap the start found, and who accepted it.
    entries = json.loads(served.run("forgeonectl", "audit", "export", "--format", "json").stdout)
    gaps = [e for e in entries if e["event"] == "audit.gap"]
    accepted = [e for e in entries if e.get("details", {}).get("action") == "audit_accept_gap"]
    assert [g["reason"] for g in gaps] == ["new_chain"], gaps
    assert [(a["event"], a["actor"]) for a in accepted] == [
        ("control.requested", "uid=0(root)"),
        ("control.action", "uid=0(root)"),
    ]
    assert unit_property(served, "ActiveState") == "active"
    assert status(served)["sample"]["state"] == "running"
