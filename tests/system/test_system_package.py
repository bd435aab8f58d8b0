"""The packaged daemon under a real systemd 252, checked the way an administrator would.

One container (module fixture ``served``) is shared by the ordered checks below; the ones
that end the service (kill -9, stop) come last. Install/remove/purge get a fresh container.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    DEB_NAME,
    KEYS,
    PLUGINS_D,
    SamplePlugin,
    install_package,
    sign_into,
    trust_new_key,
    unit_property,
)
from nspawn_harness import Container, wait_until

from forgeoned.cli.exitcodes import FORBIDDEN, UNREACHABLE
from forgeoned.core.events import EventName

# The first run builds the Debian tree (debootstrap) and the package inside a fixture.
pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

CONFIG = "/etc/forgeoned/forgeoned.toml"
CATALOG = Path(__file__).resolve().parents[2] / "systemd/forgeoned.catalog"


def status(container: Container, user: str | None = None) -> dict[str, dict[str, Any]]:
    out = container.run("forgeonectl", "status", "--json", user=user).stdout
    return {entry["name"]: entry for entry in json.loads(out)["plugins"]}


def journal(container: Container, after: str | None = None) -> list[dict[str, Any]]:
    """forgeoned's journal entries, all of them or those after the cursor ``after``."""
    if after is None:
        argv = ["journalctl", "-u", "forgeoned", "-o", "json", "--no-pager"]
    else:
        # journalctl 252 returns nothing for -u combined with --after-cursor when the cursor's
        # own entry does not match, so read everything after it and filter here.
        argv = ["journalctl", "-o", "json", "--no-pager", f"--after-cursor={after}"]
    entries = [json.loads(line) for line in container.run(*argv).stdout.splitlines() if line]
    # A message sent just before the process exits may reach journald after it is gone and
    # then carries no _SYSTEMD_UNIT; its SYSLOG_IDENTIFIER still names us.
    return [
        e
        for e in entries
        if e.get("_SYSTEMD_UNIT") == "forgeoned.service"
        or e.get("SYSLOG_IDENTIFIER") == "forgeoned"
    ]


def events(container: Container, after: str | None = None) -> list[dict[str, Any]]:
    return [e for e in journal(container, after) if "FORGEONE_EVENT" in e]


def cursor(container: Container) -> str:
    out = container.run("journalctl", "-o", "json", "-n", "1", "--no-pager").stdout
    return str(json.loads(out.splitlines()[-1])["__CURSOR"])


def catalog_subjects() -> dict[str, str]:
    """MESSAGE_ID -> Subject, from the catalog file the package installs."""
    subjects: dict[str, str] = {}
    current = ""
    for line in CATALOG.read_text().splitlines():
        if match := re.match(r"^-- ([0-9a-f]{32})\b", line):
            current = match.group(1)
        elif line.startswith("Subject:") and current:
            subjects[current] = line.removeprefix("Subject:").strip()
    return subjects


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
    upgraded = [e for e in events(served) if e["FORGEONE_EVENT"] == "plugin.upgraded"]
    assert any(e.get("FORGEONE_VERSION") == "1.0.1" for e in upgraded)


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
    served.run("systemctl", "reload", "forgeoned", timeout=120)
    # No waiting: ExecReload blocks until the daemon has finished, so the event is there.
    reloaded = [e for e in events(served, after=before) if e["FORGEONE_EVENT"] == "daemon.reloaded"]
    assert reloaded, "daemon.reloaded was not logged before systemctl reload returned"
    assert "FORGEONE_REASON" not in reloaded[0] or not reloaded[0]["FORGEONE_REASON"]
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


def test_forgeonectl_install_and_remove_go_through_the_sandboxed_daemon(
    served: Container, sample_plugin: SamplePlugin
) -> None:
    """The daemon itself writes into plugins.d (ReadWritePaths=) and deletes from it."""
    artifact = "/root/third-1.0.0.wasm"
    sign_into(served, sample_plugin, "1.0.0", artifact, name="third")
    served.run("forgeonectl", "install", artifact)
    wait_until(
        "the installed plugin to run",
        lambda: status(served).get("third", {}).get("state") == "running",
        60,
    )
    written = served.run("find", PLUGINS_D, "-newer", artifact, "-name", "*.wasm").stdout.split()
    assert len(written) == 1
    assert served.run("stat", "-c", "%U", written[0]).stdout.strip() == "forgeoned"
    served.run("forgeonectl", "remove", "third")
    wait_until("the plugin to be gone", lambda: "third" not in status(served), 60)
    assert served.run("test", "-e", written[0], check=False).returncode != 0


SECRET = "s3cr3t-value-for-the-system-test"
SAMPLE_POLICY = '\n[capabilities.sample]\nlog = true\nsecrets = ["api-token"]\n'


def grant_sample_the_secret(container: Container) -> None:
    """The operator's policy must grant the secret the manifest asks for."""
    if "[capabilities.sample]" not in container.run("cat", CONFIG).stdout:
        policy = container.put("sample-policy.toml", SAMPLE_POLICY.encode())
        container.sh(f"cat {policy} >> {CONFIG}")


def secret_answer(container: Container) -> str:
    out = container.run("forgeonectl", "invoke", "sample", "--input", "!secret").stdout
    return out.strip()


def restart_and_wait(container: Container) -> None:
    container.run("systemctl", "restart", "forgeoned", timeout=180)
    wait_until(
        "the sample to run after the restart",
        lambda: status(container).get("sample", {}).get("state") == "running",
        60,
    )


def test_a_secret_passed_by_a_load_credential_drop_in_reaches_the_plugin(
    served: Container,
) -> None:
    """One LoadCredential= line per secret (systemctl edit) keeps the secret's own name."""
    grant_sample_the_secret(served)
    served.sh(
        f"printf %s '{SECRET}' > /etc/forgeoned/credentials/api-token\n"
        "chmod 0600 /etc/forgeoned/credentials/api-token\n"
        "mkdir -p /etc/systemd/system/forgeoned.service.d\n"
        "printf '[Service]\\nLoadCredential=api-token:/etc/forgeoned/credentials/api-token\\n'"
        " > /etc/systemd/system/forgeoned.service.d/secrets.conf\n"
        "systemctl daemon-reload"
    )
    try:
        restart_and_wait(served)
        assert f"secret-len={len(SECRET)}" in secret_answer(served)
        # The daemon user cannot read the source file; only systemd's copy.
        assert (
            served.run(
                "test", "-r", "/etc/forgeoned/credentials/api-token", user="forgeoned", check=False
            ).returncode
            != 0
        )
    finally:
        served.sh(
            "rm -f /etc/systemd/system/forgeoned.service.d/secrets.conf; systemctl daemon-reload"
        )
        restart_and_wait(served)


@pytest.mark.xfail(
    strict=True,
    reason="systemd 252 names a directory's credentials secret_<file>; the runtime's "
    "secret_get looks up $CREDENTIALS_DIRECTORY/<name> only",
)
def test_a_secret_dropped_into_the_credentials_directory_reaches_the_plugin(
    served: Container,
) -> None:
    grant_sample_the_secret(served)
    served.sh(
        f"printf %s '{SECRET}' > /etc/forgeoned/credentials/api-token\n"
        "chmod 0600 /etc/forgeoned/credentials/api-token"
    )
    restart_and_wait(served)
    assert f"secret-len={len(SECRET)}" in secret_answer(served)


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


def refused_one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forgeonectl: "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


def test_status_works_for_root_and_is_refused_for_an_unprivileged_user(
    served: Container,
) -> None:
    assert status(served)["sample"]["state"] == "running"
    served.run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "mallory")
    # Not in group forgeoned: the socket (0660 root:forgeoned... in a 0750 directory) is
    # closed to mallory, so the request never reaches the daemon.
    refused = served.run("forgeonectl", "status", user="mallory", check=False)
    assert refused.returncode == UNREACHABLE, refused.stderr
    refused_one_line(refused)


def test_a_socket_group_member_without_a_role_is_denied_and_audited(served: Container) -> None:
    served.run(
        "useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", "forgeoned", "eve"
    )
    mark = cursor(served)
    denied = served.run("forgeonectl", "status", user="eve", check=False)
    assert denied.returncode == FORBIDDEN, denied.stderr
    refused_one_line(denied)
    # The daemon's journal writer is asynchronous: wait for the entry (bounded).
    wait_until(
        "control.denied in the journal",
        lambda: any(e["FORGEONE_EVENT"] == "control.denied" for e in events(served, after=mark)),
        30,
    )
    # Nothing changed for anyone else.
    assert status(served)["sample"]["state"] == "running"


def test_reinstalling_the_package_restarts_and_keeps_config_and_plugins(
    served: Container,
) -> None:
    before = {(p["name"], p["version"], p["sha256"]) for p in status(served).values()}
    served.sh(f"printf '# edited by the admin\\n' >> {CONFIG}")
    config = served.run("cat", CONFIG).stdout
    pid = unit_property(served, "MainPID")
    served.run(
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--reinstall",
        f"/mnt/share/{DEB_NAME}",
        timeout=180,
    )
    assert served.run("cat", CONFIG).stdout == config  # a conffile the admin changed stays
    assert unit_property(served, "ActiveState") == "active"
    assert unit_property(served, "MainPID") != pid  # postinst try-restart ran the new code

    def all_running() -> dict[str, dict[str, Any]] | None:
        now = status(served)
        return now if now and all(p["state"] == "running" for p in now.values()) else None

    after = wait_until("the plugins to run again", all_running, 60)
    assert {(p["name"], p["version"], p["sha256"]) for p in after.values()} == before


def test_kill_9_restarts_the_daemon_with_the_same_plugins(served: Container) -> None:
    before = {(p["name"], p["version"], p["sha256"]) for p in status(served).values()}
    pid = unit_property(served, "MainPID")
    restarts = int(unit_property(served, "NRestarts"))
    served.run("sh", "-c", f"kill -9 {pid}")  # as an admin would, with the shell's kill

    def restarted() -> bool:
        return (
            unit_property(served, "MainPID") not in ("0", pid)
            and unit_property(served, "ActiveState") == "active"
        )

    wait_until("systemd to restart forgeoned", restarted, 90)
    assert int(unit_property(served, "NRestarts")) == restarts + 1

    def all_running() -> dict[str, dict[str, Any]] | None:
        now = status(served)
        return now if now and all(p["state"] == "running" for p in now.values()) else None

    after = wait_until("the plugins to run again", all_running, 60)
    assert {(p["name"], p["version"], p["sha256"]) for p in after.values()} == before


def test_systemctl_stop_drains_within_the_timeout(served: Container) -> None:
    before = cursor(served)
    served.run("systemctl", "stop", "forgeoned", timeout=180)
    assert unit_property(served, "ActiveState") == "inactive"
    # "timeout" here would mean systemd had to SIGKILL it after TimeoutStopSec.
    assert unit_property(served, "Result") == "success"
    assert unit_property(served, "ExecMainStatus") == "0"
    names = [e["FORGEONE_EVENT"] for e in events(served, after=before)]
    assert "daemon.stopped" in names


def test_install_use_remove_purge_on_a_fresh_debian(
    fresh_container: Container, sample_plugin: SamplePlugin
) -> None:
    c = fresh_container
    install_package(c)
    assert c.run("systemctl", "is-enabled", "forgeoned").stdout.strip() == "enabled"
    assert c.run("systemctl", "is-active", "forgeoned").stdout.strip() == "active"
    assert c.run("getent", "passwd", "forgeoned").stdout.startswith("forgeoned:")
    c.run("test", "-f", "/usr/lib/systemd/catalog/forgeoned.catalog")
    c.run("test", "-f", "/usr/share/forgeoned/grafana/forgeoned-dashboard.json")
    c.run("test", "-f", "/usr/share/forgeoned/prometheus/forgeoned-rules.yml")

    # Use it, so that state, cache and audit log exist.
    trust_new_key(c, "admin")
    c.run("systemctl", "reload", "forgeoned", timeout=120)
    sign_into(c, sample_plugin, "1.0.0", f"{PLUGINS_D}/sample.wasm")
    wait_until(
        "the sample to run",
        lambda: status(c).get("sample", {}).get("state") == "running",
        60,
    )
    c.run("test", "-d", "/var/lib/forgeoned/audit")

    remove = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y"]
    c.run(*remove, "remove", "forgeoned", timeout=180)
    # remove: the service is stopped, the program is gone, configuration and state stay.
    assert c.run("systemctl", "is-active", "forgeoned", check=False).stdout.strip() != "active"
    for path in ("/usr/lib/forgeoned", "/usr/bin/forgeoned", "/usr/bin/forgeonectl"):
        assert c.run("test", "-e", path, check=False).returncode != 0, f"{path} left behind"
    c.run("test", "-f", CONFIG)
    c.run("test", "-d", "/var/lib/forgeoned")

    c.run(*remove, "purge", "forgeoned", timeout=180)
    for path in (
        CONFIG,
        "/etc/forgeoned/credentials",
        "/var/lib/forgeoned",
        "/var/cache/forgeoned",
        "/run/forgeoned",
        "/usr/lib/systemd/system/forgeoned.service",
        "/etc/systemd/system/multi-user.target.wants/forgeoned.service",
    ):
        assert c.run("test", "-e", path, check=False).returncode != 0, f"{path} left behind"
    state = c.run("dpkg-query", "-W", "-f=${db:Status-Status}", "forgeoned", check=False)
    assert state.returncode != 0 or state.stdout == "not-installed"
    # Debian policy keeps what the administrator created (their plugins and keys) and the
    # system account (files elsewhere may still belong to it).
    left = c.run("find", "/etc/forgeoned", "-type", "f").stdout.split()
    assert sorted(left) == [f"{PLUGINS_D}/sample.wasm", "/etc/forgeoned/trusted.d/admin.pub"]
    c.run("getent", "passwd", "forgeoned")
