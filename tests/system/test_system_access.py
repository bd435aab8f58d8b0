"""Who may drive the packaged daemon, how plugins and secrets reach it, under systemd 252."""

from __future__ import annotations

import subprocess

import pytest
from nspawn_harness import Container, wait_until
from system_admin import (
    CONFIG,
    PLUGINS_D,
    SamplePlugin,
    cursor,
    events,
    sign_into,
    status,
)

from forgeoned.cli.exitcodes import FORBIDDEN, UNREACHABLE

# The first run builds the Debian tree (debootstrap) and the package inside a fixture.
pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


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


def test_a_secret_dropped_into_the_credentials_directory_reaches_the_plugin(
    served: Container,
) -> None:
    """The admin writes the file, reloads systemd (the generator adds LoadCredential=) and
    restarts; the plugin reads it by its own name, the daemon user cannot read the source."""
    grant_sample_the_secret(served)
    source = "/etc/forgeoned/credentials/api-token"
    served.sh(f"printf %s '{SECRET}' > {source}; chmod 0600 {source}")
    served.run("systemctl", "daemon-reload")
    unit = served.run("systemctl", "cat", "forgeoned").stdout
    assert f"LoadCredential=api-token:{source}" in unit
    restart_and_wait(served)
    assert f"secret-len={len(SECRET)}" in secret_answer(served)
    unreadable = served.run("test", "-r", source, user="forgeoned", check=False)
    assert unreadable.returncode != 0


def test_without_the_secret_the_plugin_gets_not_found_and_nothing_breaks(
    served: Container,
) -> None:
    served.run("rm", "-f", "/etc/forgeoned/credentials/api-token")
    served.run("systemctl", "daemon-reload")
    assert "LoadCredential=api-token" not in served.run("systemctl", "cat", "forgeoned").stdout
    restart_and_wait(served)
    assert "secret!not-found" in secret_answer(served)
