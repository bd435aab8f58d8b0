"""docs/operations.md followed literally, in a freshly booted Debian 12 (issue 17).

The main path of the guide (install, access, trust, deploy, upgrade, remove, journal,
purge) is taken from the guide itself, the fenced ``sh`` blocks marked ``<!-- system-test:
main-path STEP -->``, and each is run as written, in order, with ``sh -e`` in one working
directory. So a change of the guide that breaks the path fails here. What the test adds is
only what a real administrator has and a bare container lacks: ``sudo`` (a shim: everything
runs as root already), a "yes" to apt's questions, the user ``alice``, and the files a plugin
author hands over (``plugin.wasm`` and ``manifest.toml`` before *deploy*, the signed
``hello-1.1.0.wasm`` before *upgrade*). After each step it checks what the guide says happened.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
from doc_steps import MAIN_PATH, main_path
from nspawn_harness import Container, wait_until
from system_admin import DEB_NAME, SamplePlugin, install_sudo, status, unit_property

from forgeoned.core.events import EventName

pytestmark = [pytest.mark.system, pytest.mark.timeout(1500)]

WORK = "/root/work"
# What apt prints when its output is not a terminal (here; never at an administrator's).
APT_NOT_A_TTY = "WARNING: apt does not have a stable CLI interface"
Hook = Callable[[Container, subprocess.CompletedProcess[str]], None]


def prepare(c: Container) -> None:
    install_sudo(c)
    c.sh("echo 'APT::Get::Assume-Yes \"true\";' > /etc/apt/apt.conf.d/90assume-yes")
    c.run("mkdir", "-p", WORK)
    c.run("cp", f"/mnt/share/{DEB_NAME}", f"{WORK}/{DEB_NAME}")  # "copy it to the host"
    c.run("useradd", "--create-home", "--shell", "/bin/sh", "alice")


def author_hands_over(c: Container, plugin: SamplePlugin) -> None:
    """What the plugin's author built: the module and its manifest."""
    c.run("cp", c.put("plugin.wasm", plugin.wasm), f"{WORK}/plugin.wasm")
    manifest = c.put("manifest.toml", plugin.manifest_for("1.0.0", "hello").encode())
    c.run("cp", manifest, f"{WORK}/manifest.toml")


def author_signs_the_upgrade(c: Container, plugin: SamplePlugin) -> None:
    """Step 3's "sign the new version the same way", with the key of step 1."""
    manifest = c.put("manifest-1.1.0.toml", plugin.manifest_for("1.1.0", "hello").encode())
    c.sh(
        f"cd {WORK}\n"
        f"forgeonectl package plugin.wasm --manifest {manifest} -o hello-1.1.0.unsigned.wasm\n"
        "forgeonectl sign --key ~/keys/ops.key hello-1.1.0.unsigned.wasm -o hello-1.1.0.wasm"
    )


def hello(c: Container) -> dict[str, str]:
    return dict(status(c).get("hello", {}))


def after_install(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    assert unit_property(c, "ActiveState") == "active"
    assert "active (running)" in out.stdout
    c.run("test", "-f", "/usr/share/bash-completion/completions/forgeonectl")


def after_access(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    assert "applied: control.policy" in out.stdout, out.stdout
    assert "configuration OK" in out.stdout
    # alice logs in again (a new session: runuser reads her groups afresh) and is an operator.
    whoami = json.loads(c.run("forgeonectl", "whoami", user="alice").stdout)
    assert {"list", "pause", "invoke"} <= set(whoami["actions"])
    assert "install" not in whoami["actions"]


def after_trust(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    shown = c.run("forgeonectl", "keys", "show", "--json", "/root/keys/ops.pub").stdout
    fingerprint = json.loads(shown)["fingerprint"]
    listed = [line for line in out.stdout.splitlines() if line.startswith("ops ")]
    assert listed and fingerprint in listed[0], out.stdout


def after_deploy(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    assert "trusted and loadable: hello 1.0.0" in out.stdout
    running = wait_until("hello to run", lambda: hello(c).get("state") == "running", 60)
    assert running and hello(c)["version"] == "1.0.0"


def after_upgrade(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    # install returns once the new version serves: no waiting here.
    assert "installed hello 1.1.0" in out.stdout, out.stdout
    assert (hello(c)["version"], hello(c)["state"]) == ("1.1.0", "running")


def after_remove(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    wait_until("hello to be gone", lambda: "hello" not in status(c), 60)


def after_journal(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    listed = {line.split()[0] for line in out.stdout.splitlines() if line[:1].isalnum()}
    assert {e.message_id for e in EventName} <= listed  # the whole catalog
    assert "plugin.upgraded: hello 1.1.0" in out.stdout  # the -x listing
    assert "AUDIT CHAIN BROKEN" not in out.stdout  # nothing at crit


def after_purge(c: Container, out: subprocess.CompletedProcess[str]) -> None:
    assert c.run("test", "-e", "/usr/bin/forgeoned", check=False).returncode != 0
    assert c.run("test", "-e", "/var/lib/forgeoned", check=False).returncode != 0
    warnings = [
        line
        for line in out.stdout.splitlines()
        if "warning" in line.lower() and not line.startswith(APT_NOT_A_TTY)
    ]
    # The one remark the guide announces: the admin's own files (ops.pub) keep /etc/forgeoned.
    assert warnings == [
        "dpkg: warning: while removing forgeoned, directory '/etc/forgeoned' not empty so not "
        "removed"
    ], out.stdout


CHECKS: dict[str, Hook] = {
    "install": after_install,
    "access": after_access,
    "trust": after_trust,
    "deploy": after_deploy,
    "upgrade": after_upgrade,
    "remove": after_remove,
    "journal": after_journal,
    "purge": after_purge,
}


def test_the_main_path_of_the_operations_guide_works_as_written(
    fresh_container: Container, sample_plugin: SamplePlugin
) -> None:
    c = fresh_container
    steps = main_path()
    assert [s.name for s in steps] == list(MAIN_PATH) == list(CHECKS)
    prepare(c)
    for step in steps:
        if step.name == "deploy":
            author_hands_over(c, sample_plugin)
        if step.name == "upgrade":
            author_signs_the_upgrade(c, sample_plugin)
        out = c.run("sh", "-ec", f"cd {WORK}\n{step.script}", timeout=300, check=False)
        # apt and dpkg talk on stdout and stderr; the checks read both
        both = subprocess.CompletedProcess(out.args, out.returncode, out.stdout + out.stderr, "")
        assert out.returncode == 0, f"step {step.name} failed:\n{step.script}\n{both.stdout}"
        CHECKS[step.name](c, both)
