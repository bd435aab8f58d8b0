"""The Debian package on a fresh Debian 12: install, use, reinstall, remove, purge."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nspawn_harness import Container, wait_until
from system_admin import (
    CONFIG,
    DEB_NAME,
    PLUGINS_D,
    SamplePlugin,
    install_package,
    sign_into,
    status,
    trust_new_key,
    unit_property,
)

# The first run builds the Debian tree (debootstrap) and the package inside a fixture.
pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


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
    # Shell completion where bash-completion and zsh look for it (issue 17, item 6).
    bash = c.run("cat", "/usr/share/bash-completion/completions/forgeonectl").stdout
    assert "complete -F _forgeonectl forgeonectl" in bash and " keys" in bash
    zsh = c.run("cat", "/usr/share/zsh/vendor-completions/_forgeonectl").stdout
    assert zsh.startswith("#compdef forgeonectl")
    assert "Suggests: curl" in c.run("dpkg-query", "-s", "forgeoned").stdout
    # forgeoned-fetch (issue 16's init step) runs from the private venv, with its man page
    fetch = c.run("forgeoned-fetch", "--help").stdout
    assert fetch.startswith("usage: forgeoned-fetch") and "--once" in fetch
    c.run("test", "-f", "/usr/share/man/man8/forgeoned-fetch.8.gz")

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
    removed = c.run(*remove, "remove", "forgeoned", timeout=180)
    # No directory the package shares with systemd is left "not empty" (the generator ships
    # in /lib/systemd/system-generators, which dpkg knows as systemd's).
    assert "warning" not in (removed.stdout + removed.stderr).lower(), removed.stdout
    # remove: the service is stopped, the program is gone, configuration and state stay.
    assert c.run("systemctl", "is-active", "forgeoned", check=False).stdout.strip() != "active"
    for path in ("/usr/lib/forgeoned", "/usr/bin/forgeoned", "/usr/bin/forgeonectl",
                 "/usr/bin/forgeoned-fetch"):  # fmt: skip
        assert c.run("test", "-e", path, check=False).returncode != 0, f"{path} left behind"
    c.run("test", "-f", CONFIG)
    c.run("test", "-d", "/var/lib/forgeoned")

    purged = c.run(*remove, "purge", "forgeoned", timeout=180)
    # dpkg's only remark: /etc/forgeoned stays because the admin's own files are in it.
    warnings = [line for line in purged.stdout.splitlines() if "warning" in line.lower()]
    assert warnings == [
        "dpkg: warning: while removing forgeoned, directory '/etc/forgeoned' not empty so not "
        "removed"
    ], purged.stdout
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
    # and the pinned audit checkpoint key, which an auditor needs to verify kept audit copies
    assert sorted(left) == [
        "/etc/forgeoned/audit-checkpoint.pub",
        f"{PLUGINS_D}/sample.wasm",
        "/etc/forgeoned/trusted.d/admin.pub",
    ]
    c.run("getent", "passwd", "forgeoned")


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian is not installed")
def test_lintian_reports_no_errors_or_warnings(deb_file: Path) -> None:
    proc = subprocess.run(
        ["lintian", "--tag-display-limit", "0", str(deb_file)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tags = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    # Accepted: a first upload closes no bug report.
    accepted = ("initial-upload-closes-no-bugs",)
    assert [t for t in tags if not any(a in t for a in accepted)] == [], proc.stdout
