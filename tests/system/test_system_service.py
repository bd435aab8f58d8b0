"""The packaged daemon under a real systemd 252, driven with systemctl as an administrator would.

One container (module fixture ``served``) is shared by the ordered checks below; the ones
that end the service (kill -9, stop) come last.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from nspawn_harness import Container, wait_until
from system_admin import (
    CONFIG,
    KEYS,
    PLUGINS_D,
    SamplePlugin,
    catalog_subjects,
    cursor,
    events,
    journal,
    sign_into,
    status,
    unit_property,
)

from forgeoned.core.events import EventName

# The first run builds the Debian tree (debootstrap) and the package inside a fixture.
pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


def test_start_reaches_active_with_the_sample_running(served: Container) -> None:
    assert unit_property(served, "ActiveState") == "active"
    plugin = wait_until(
        "the sample plugin to be running",
        lambda: status(served).get("sample", {}).get("state") == "running" and status(served),
        60,
    )["sample"]
    assert plugin["version"] == "1.0.0"
    on_disk = served.run("sha256sum", f"{PLUGINS_D}/sample.wasm").stdout.split()[0]
    assert plugin["sha256"] == on_disk


def test_daemon_runs_unprivileged_and_sandboxed(served: Container) -> None:
    pid = unit_property(served, "MainPID")
    proc_status = served.run("cat", f"/proc/{pid}/status").stdout
    fields = dict(line.split(":\t", 1) for line in proc_status.splitlines() if ":\t" in line)
    user = served.run("id", "-u", "forgeoned").stdout.strip()
    assert fields["Uid"].split()[0] == user
    assert fields["NoNewPrivs"].strip() == "1"
    assert int(fields["CapEff"].strip(), 16) == 0
    assert fields["Seccomp"].strip() == "2"


def test_a_new_signed_version_dropped_in_is_swapped_without_restart(
    served: Container, sample_plugin: SamplePlugin
) -> None:
    pid = unit_property(served, "MainPID")
    digest = sign_into(served, sample_plugin, "1.0.1", f"{PLUGINS_D}/sample.wasm")

    def swapped() -> dict[str, Any] | None:
        entry = status(served).get("sample", {})
        ok = entry.get("version") == "1.0.1" and entry.get("state") == "running"
        return entry if ok else None

    entry = wait_until("version 1.0.1 to be running", swapped, 60)
    assert entry["sha256"] == digest
    assert unit_property(served, "MainPID") == pid
    wait_until(  # the journal copy of the audit event is written asynchronously
        "plugin.upgraded 1.0.1 in the journal",
        lambda: any(
            e["FORGEONE_EVENT"] == "plugin.upgraded" and e.get("FORGEONE_VERSION") == "1.0.1"
            for e in events(served)
        ),
        30,
    )


def audited(container: Container, event: str) -> list[dict[str, Any]]:
    """Entries of the daemon's own audit log (`forgeonectl audit export`) for ``event``."""
    out = container.run("forgeonectl", "audit", "export", "--format", "json").stdout
    return [e for e in json.loads(out) if e.get("event") == event]


def test_systemctl_reload_takes_in_a_new_trusted_key_before_returning(
    served: Container, sample_plugin: SamplePlugin
) -> None:
    pid = unit_property(served, "MainPID")
    # A plugin signed by a key the daemon does not trust yet is refused...
    served.run("forgeonectl", "keys", "generate", "--out", KEYS, "--name", "team")
    mark = cursor(served)
    sign_into(served, sample_plugin, "1.0.0", f"{PLUGINS_D}/other.wasm", name="other", key="team")
    wait_until(
        "the untrusted plugin to be rejected",
        lambda: any(e["FORGEONE_EVENT"] == "plugin.rejected" for e in events(served, after=mark)),
        60,
    )
    assert "other" not in status(served)

    # ...until the admin trusts the key and reloads.
    served.run("install", "-m", "0644", f"{KEYS}/team.pub", "/etc/forgeoned/trusted.d/team.pub")
    before = cursor(served)
    reloads = len(audited(served, "daemon.reloaded"))
    served.run("systemctl", "reload", "forgeoned", timeout=120)
    # No waiting: ExecReload blocks until the daemon has finished, and the audit log is
    # written (and fsync'd) before the reload returns.
    done = audited(served, "daemon.reloaded")
    assert len(done) == reloads + 1, "systemctl reload returned before the reload was done"
    assert not done[-1].get("reason"), done[-1]
    # The journal copy is written asynchronously: wait for it (bounded).
    wait_until(
        "daemon.reloaded in the journal",
        lambda: any(e["FORGEONE_EVENT"] == "daemon.reloaded" for e in events(served, before)),
        30,
    )
    wait_until(
        "the newly trusted plugin to run",
        lambda: status(served).get("other", {}).get("state") == "running",
        60,
    )
    assert unit_property(served, "MainPID") == pid
    assert unit_property(served, "ActiveState") == "active"
    assert status(served)["sample"]["state"] == "running"


def test_a_reload_with_a_broken_config_fails_and_keeps_the_running_one(
    served: Container,
) -> None:
    config = served.run("cat", CONFIG).stdout
    served.sh(f"printf 'no_such_key = 1\\n' >> {CONFIG}")
    try:
        refused = served.run("systemctl", "reload", "forgeoned", timeout=120, check=False)
        assert refused.returncode != 0
        assert unit_property(served, "ActiveState") == "active"
        assert status(served)["sample"]["state"] == "running"
    finally:
        path = served.put("config.toml", config.encode())
        served.run("cp", path, CONFIG)
    served.run("systemctl", "reload", "forgeoned", timeout=120)


def test_journal_carries_audit_events_with_message_ids_and_catalog_text(
    served: Container,
) -> None:
    seen = events(served)
    names = {e["FORGEONE_EVENT"] for e in seen}
    assert {"daemon.started", "plugin.installed"} <= names
    for entry in seen:
        assert entry["SYSLOG_IDENTIFIER"] == "forgeoned"
        assert entry["MESSAGE_ID"] == EventName.from_label(entry["FORGEONE_EVENT"]).message_id
    installed = next(e for e in seen if e["FORGEONE_EVENT"] == "plugin.installed")
    assert installed["FORGEONE_PLUGIN"] == "sample"
    assert re.fullmatch(r"[0-9a-f]{64}", installed["FORGEONE_SHA256"])

    # journalctl -x fills the catalog's @FIELD@ placeholders from the entry itself.
    template = catalog_subjects()[EventName.PLUGIN_INSTALLED.message_id]
    subject = re.sub(r"@([A-Z0-9_]+)@", lambda m: str(installed.get(m.group(1), "")), template)
    explained = served.run("journalctl", "-u", "forgeoned", "-x", "--no-pager").stdout
    assert subject in explained
    listed = served.run("journalctl", "--list-catalog", "--no-pager").stdout
    catalog_ids = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {e.message_id for e in EventName} <= catalog_ids


def test_metrics_endpoint_answers(served: Container) -> None:
    script = (
        "import urllib.request;"
        "r = urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=10);"
        "print(r.status); print(r.read().decode())"
    )
    out = served.run("python3", "-c", script).stdout
    code, _, body = out.partition("\n")
    assert code == "200"
    assert re.search(r'^forgeone_plugin_up\{plugin="sample"\} 1(\.0)?$', body, re.M)
    assert re.search(r'^forgeone_plugin_info\{[^}]*plugin="sample"', body, re.M)


def plugin_set(container: Container) -> set[tuple[str, str, str]]:
    return {(p["name"], p["version"], p["sha256"]) for p in status(container).values()}


def wait_restarted(container: Container, old_pid: str) -> None:
    def restarted() -> bool:
        return (
            unit_property(container, "MainPID") not in ("0", old_pid)
            and unit_property(container, "ActiveState") == "active"
        )

    wait_until("systemd to restart forgeoned", restarted, 90)


def wait_all_running(container: Container) -> set[tuple[str, str, str]]:
    def all_running() -> dict[str, dict[str, Any]] | None:
        now = status(container)
        return now if now and all(p["state"] == "running" for p in now.values()) else None

    wait_until("the plugins to run again", all_running, 60)
    return plugin_set(container)


def test_a_hung_daemon_is_killed_by_the_watchdog_and_restarted(served: Container) -> None:
    """The daemon pings WATCHDOG=1; when it stops (SIGSTOP), systemd aborts and restarts it.
    A drop-in shortens WatchdogSec= so that this takes seconds, not the shipped 30 s."""
    served.sh(
        "mkdir -p /etc/systemd/system/forgeoned.service.d\n"
        "printf '[Service]\\nWatchdogSec=3s\\nTimeoutAbortSec=2s\\n'"
        " > /etc/systemd/system/forgeoned.service.d/watchdog.conf\n"
        "systemctl daemon-reload"
    )
    try:
        served.run("systemctl", "restart", "forgeoned", timeout=180)
        before = wait_all_running(served)
        pid = unit_property(served, "MainPID")
        # Alive and pinging: two keep-alives arrive while the 3 s watchdog never fires.
        first = unit_property(served, "WatchdogTimestampMonotonic")
        second = wait_until(
            "a watchdog keep-alive",
            lambda: (v := unit_property(served, "WatchdogTimestampMonotonic")) != first and v,
            10,
        )
        wait_until(
            "another watchdog keep-alive",
            lambda: unit_property(served, "WatchdogTimestampMonotonic") != second,
            10,
        )
        assert unit_property(served, "MainPID") == pid
        restarts = int(unit_property(served, "NRestarts"))

        served.run("sh", "-c", f"kill -STOP {pid}")
        wait_restarted(served, pid)
        assert int(unit_property(served, "NRestarts")) == restarts + 1
        assert wait_all_running(served) == before
    finally:
        served.sh(
            "rm -f /etc/systemd/system/forgeoned.service.d/watchdog.conf\nsystemctl daemon-reload"
        )
        served.run("systemctl", "restart", "forgeoned", timeout=180)
        wait_all_running(served)


def test_kill_9_restarts_the_daemon_with_the_same_plugins(served: Container) -> None:
    before = plugin_set(served)
    pid = unit_property(served, "MainPID")
    restarts = int(unit_property(served, "NRestarts"))
    served.run("sh", "-c", f"kill -9 {pid}")  # as an admin would, with the shell's kill
    wait_restarted(served, pid)
    assert int(unit_property(served, "NRestarts")) == restarts + 1
    assert wait_all_running(served) == before


def test_systemctl_stop_drains_within_the_timeout(served: Container) -> None:
    running = set(status(served))
    before = cursor(served)
    served.run("systemctl", "stop", "forgeoned", timeout=180)
    assert unit_property(served, "ActiveState") == "inactive"
    # "timeout" here would mean systemd had to SIGKILL it after TimeoutStopSec.
    assert unit_property(served, "Result") == "success"
    assert unit_property(served, "ExecMainStatus") == "0"
    # Every plugin ran its own stop and unload exports (the sample logs both), and the daemon
    # said it stopped. journald may still be storing what the daemon sent just before it
    # exited, so wait for all of it (bounded).
    wanted = {(plugin, step) for plugin in running for step in ("stop", "unload")}

    def everything_logged() -> list[dict[str, Any]] | None:
        entries = journal(served, before)
        said = {(e.get("FORGEONE_PLUGIN"), str(e.get("MESSAGE"))) for e in entries}
        steps = {(p, step) for p, step in wanted for q, m in said if q == p and m.endswith(step)}
        done = any(e.get("FORGEONE_EVENT") == "daemon.stopped" for e in entries)
        return entries if done and steps == wanted else None

    entries = wait_until("the shutdown to be in the journal", everything_logged, 30)
    stopped = [e for e in entries if e.get("FORGEONE_EVENT") == "daemon.stopped"]
    assert len(stopped) == 1
    # A reason ("shutdown_timeout") would mean plugins had to be interrupted.
    assert not stopped[0].get("FORGEONE_REASON"), stopped[0]
