"""Issue 12, replayed in a booted Debian 12 with the package: who may change what runs.

Item 6: a member of the socket group holding only the viewer role is refused ``remove`` by
RBAC and can no longer go around it: plugins.d is writable by root and the daemon only. A
file an administrator drops is audited with its owner as the actor. An upgrade from the old
layout (2775 root:forgeoned) is repaired by the package. Item 1: a trusted key others could
rewrite makes ``systemctl reload`` fail (the plugins keep running) and a restart refuse to
run, each with the path in the journal.
"""

from __future__ import annotations

from typing import Any

import pytest
from nspawn_harness import Container, wait_until
from system_admin import (
    CONFIG,
    DEB_NAME,
    PLUGINS_D,
    SamplePlugin,
    cursor,
    events,
    journal,
    sign_into,
    status,
    unit_property,
)

from forgeoned.cli.exitcodes import FORBIDDEN

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

VIEWER_BINDING = '\n[[control.bindings]]\nuser = "alice"\nroles = ["viewer"]\n'
TRUSTED_KEY = "/etc/forgeoned/trusted.d/admin.pub"


def journal_events(
    container: Container, after: str, event: str, **fields: str
) -> list[dict[str, Any]]:
    """forgeoned's audit events named ``event`` after the cursor, matching ``fields``
    (``FORGEONE_*`` names without the prefix)."""
    return [
        e
        for e in events(container, after=after)
        if e["FORGEONE_EVENT"] == event
        and all(e.get(f"FORGEONE_{k.upper()}") == v for k, v in fields.items())
    ]


def restart_and_wait(container: Container) -> None:
    container.run("systemctl", "restart", "forgeoned", timeout=180)
    wait_until(
        "the sample to run after the restart",
        lambda: status(container).get("sample", {}).get("state") == "running",
        60,
    )


@pytest.fixture(scope="module")
def alice(served: Container) -> Container:
    """alice: in the socket group, bound to the viewer role only."""
    served.run("useradd", "--create-home", "--shell", "/bin/sh", "-G", "forgeoned", "alice")
    binding = served.put("viewer-binding.toml", VIEWER_BINDING.encode())
    served.sh(f"cat {binding} >> {CONFIG}")
    restart_and_wait(served)  # control settings change on restart
    return served


def test_plugins_d_belongs_to_root_and_the_daemon_only(served: Container) -> None:
    out = served.run("stat", "-c", "%a %U %G", PLUGINS_D).stdout.split()
    assert out == ["755", "forgeoned", "forgeoned"]


def test_plugins_conf_d_is_created_for_root_alone(served: Container) -> None:
    # The daemon refuses a plugin config directory anyone but root could write (StrictModes):
    # the package creates it in that shape, so an administrator starts from a valid one.
    out = served.run("stat", "-c", "%a %U %G", "/etc/forgeoned/plugins.conf.d").stdout.split()
    assert out == ["755", "root", "root"]


def test_a_viewer_in_the_socket_group_can_neither_remove_nor_add_plugin_files(
    alice: Container, sample_plugin: SamplePlugin
) -> None:
    assert status(alice, user="alice")["sample"]["state"] == "running"  # viewer: may look
    refused = alice.run("forgeonectl", "remove", "sample", user="alice", check=False)
    assert refused.returncode == FORBIDDEN, refused.stderr
    # ... and the way around RBAC is closed: the directory refuses her.
    rm = alice.run("rm", "-f", f"{PLUGINS_D}/sample.wasm", user="alice", check=False)
    assert rm.returncode != 0 and "Permission denied" in rm.stderr
    sign_into(alice, sample_plugin, "1.0.0", "/root/other.wasm", name="other")
    alice.run("install", "-m", "0644", "/root/other.wasm", "/tmp/other.wasm")
    cp = alice.run("cp", "/tmp/other.wasm", f"{PLUGINS_D}/other.wasm", user="alice", check=False)
    assert cp.returncode != 0 and "Permission denied" in cp.stderr
    alice.run("test", "-f", f"{PLUGINS_D}/sample.wasm")
    alice.run("test", "!", "-e", f"{PLUGINS_D}/other.wasm")
    assert status(alice)["sample"]["state"] == "running"
    assert "other" not in status(alice)


def test_a_file_dropped_into_plugins_d_is_audited_with_its_owner(
    alice: Container, sample_plugin: SamplePlugin
) -> None:
    """root copies alice's artifact in keeping her as its owner: she is the actor."""
    uid = alice.run("id", "-u", "alice").stdout.strip()
    mark = cursor(alice)
    sign_into(alice, sample_plugin, "1.0.0", "/root/third.wasm", name="third")
    alice.run("chown", "alice:alice", "/root/third.wasm")
    alice.run("mv", "/root/third.wasm", f"{PLUGINS_D}/third.wasm")
    actor = f"uid={uid}(alice)"
    wait_until(
        "plugin.installed credited to the file's owner",
        lambda: journal_events(alice, mark, "plugin.installed", plugin="third", actor=actor),
        60,
    )
    mark = cursor(alice)
    alice.run("rm", f"{PLUGINS_D}/third.wasm")
    wait_until(
        "plugin.removed credited to the file's last owner",
        lambda: journal_events(alice, mark, "plugin.removed", plugin="third", actor=actor),
        60,
    )


def test_an_upgrade_repairs_the_old_group_writable_layout(
    alice: Container, sample_plugin: SamplePlugin
) -> None:
    sign_into(alice, sample_plugin, "1.0.0", "/root/legacy.wasm", name="legacy")
    alice.sh(
        f"chmod 2775 {PLUGINS_D}; chown root:forgeoned {PLUGINS_D}; "
        f"install -m 0664 -o alice -g forgeoned /root/legacy.wasm {PLUGINS_D}/legacy.wasm"
    )
    reinstall = alice.run(
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--reinstall",
        f"/mnt/share/{DEB_NAME}", timeout=180,
    )  # fmt: skip
    assert f"{PLUGINS_D}/legacy.wasm (owner alice)" in reinstall.stdout + reinstall.stderr
    out = alice.run("stat", "-c", "%a %U %G", PLUGINS_D).stdout.split()
    assert out == ["755", "forgeoned", "forgeoned"]
    assert alice.run("stat", "-c", "%a", f"{PLUGINS_D}/legacy.wasm").stdout.strip() == "644"
    alice.run("rm", f"{PLUGINS_D}/legacy.wasm")
    wait_until("legacy gone", lambda: "legacy" not in status(alice), 60)


def test_a_trusted_key_others_could_rewrite_refuses_reload_and_start(served: Container) -> None:
    served.run("chmod", "0666", TRUSTED_KEY)
    try:
        mark = cursor(served)
        reload = served.run("systemctl", "reload", "forgeoned", timeout=120, check=False)
        assert reload.returncode != 0
        assert unit_property(served, "ActiveState") == "active"
        assert status(served)["sample"]["state"] == "running"  # the running set is kept
        found = wait_until(
            "config.insecure in the journal",
            lambda: journal_events(served, mark, "config.insecure"),
            30,
        )
        assert f"{TRUSTED_KEY}: writable by group and others" in found[0]["MESSAGE"]
        mark = cursor(served)
        restart = served.run("systemctl", "restart", "forgeoned", timeout=180, check=False)
        assert restart.returncode != 0
        assert unit_property(served, "ActiveState") == "failed"
        assert unit_property(served, "ExecMainStatus") == "78"  # not retried
        said = [str(e.get("MESSAGE", "")) for e in journal(served, after=mark)]
        assert any(  # the audit event, and the daemon's last line on stderr
            m.startswith("config.insecure") and f"chmod go-w {TRUSTED_KEY}" in m for m in said
        ), said
        assert any(m.startswith("forgeoned: refusing files others could change") for m in said)
    finally:
        served.run("chmod", "0644", TRUSTED_KEY)
        served.run("systemctl", "reset-failed", "forgeoned", check=False)
    restart_and_wait(served)


def test_the_socket_group_cannot_read_the_daemons_state(alice: Container) -> None:
    for path in ("/var/lib/forgeoned", "/var/cache/forgeoned"):
        assert alice.run("stat", "-c", "%a %U", path).stdout.split() == ["700", "forgeoned"]
    peek = alice.run("ls", "/var/lib/forgeoned/audit", user="alice", check=False)
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
