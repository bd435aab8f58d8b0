"""What an administrator does inside the container, as functions the system tests share.

Keys are made, plugins packaged and signed with the *installed* ``forgeonectl`` inside the
container, files enter ``plugins.d`` by rename, and the package is installed with apt.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abi_wat import ALLOC, lifecycle_exports
from nspawn_harness import Container

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "examples/sample-plugin"
SAMPLE_WASM = SAMPLE_DIR / "target/wasm32-unknown-unknown/release/forgeone_sample_plugin.wasm"
DEB_NAME = "forgeoned_amd64.deb"
KEYS = "/root/keys"
PLUGINS_D = "/etc/forgeoned/plugins.d"
SUDO = """#!/bin/sh
# Stands in for sudo in the test container: every command runs as root already.
if [ "${1:-}" = -u ]; then user=$2; shift 2; exec runuser -u "$user" -- "$@"; fi
exec "$@"
"""

# Used only when the Rust sample cannot be built here: the smallest ABI v1 plugin with a
# `handle` that echoes its input.
FALLBACK_WAT = f"""
(module
  (import "forgeone" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  {lifecycle_exports()}
  {ALLOC}
  (func (export "handle") (param $ptr i32) (param $len i32) (result i32)
    (drop (call $output (local.get $ptr) (local.get $len)))
    i32.const 0))
"""
FALLBACK_MANIFEST = """name = "sample"
version = "1.0.0"
abi = 1
[capabilities]
log = true
"""


@dataclass(frozen=True, slots=True)
class SamplePlugin:
    """A built plugin module and its manifest (TOML text), ready to package and sign."""

    wasm: bytes
    manifest: str
    rust: bool

    def manifest_for(self, version: str, name: str = "sample") -> str:
        text = re.sub(r"(?m)^version\s*=.*$", f'version = "{version}"', self.manifest, count=1)
        return re.sub(r"(?m)^name\s*=.*$", f'name = "{name}"', text, count=1)


def build_sample_plugin() -> SamplePlugin:
    """The Rust sample plugin if it builds here, else an equivalent inline-WAT plugin."""
    manifest = SAMPLE_DIR / "manifest.toml"
    cargo = Path("/usr/bin/cargo")
    if (SAMPLE_DIR / "Cargo.toml").exists() and manifest.exists() and cargo.exists():
        proc = subprocess.run(
            [
                str(cargo),
                "build",
                "--offline",
                "--release",
                "-q",
                "--target",
                "wasm32-unknown-unknown",
            ],
            cwd=SAMPLE_DIR,
            env={**os.environ, "RUSTC": "/usr/bin/rustc"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"sample plugin build failed: {proc.stderr[-2000:]}"
        return SamplePlugin(SAMPLE_WASM.read_bytes(), manifest.read_text(), rust=True)
    import wasmtime

    return SamplePlugin(bytes(wasmtime.wat2wasm(FALLBACK_WAT)), FALLBACK_MANIFEST, rust=False)


def install_package(container: Container) -> None:
    container.run(
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        f"/mnt/share/{DEB_NAME}",
        timeout=180,
    )


def sign_into(
    container: Container,
    plugin: SamplePlugin,
    version: str,
    dest: str,
    *,
    name: str = "sample",
    key: str = "admin",
) -> str:
    """Package + sign ``plugin`` as ``name`` ``version`` with ``KEYS/key.key`` inside the
    container, then move it into ``dest`` by rename (never half-written); returns its sha256."""
    module = container.put("plugin.module.wasm", plugin.wasm)
    manifest = container.put(f"{name}-{version}.toml", plugin.manifest_for(version, name).encode())
    unsigned = f"/root/{name}-{version}.unsigned.wasm"
    staged = f"{os.path.dirname(dest)}/.{name}-{version}.incoming"
    container.run("forgeonectl", "package", module, "--manifest", manifest, "-o", unsigned)
    container.run("forgeonectl", "sign", "--key", f"{KEYS}/{key}.key", unsigned, "-o", staged)
    container.run("chmod", "0644", staged)
    container.run("mv", staged, dest)
    return container.run("sha256sum", dest).stdout.split()[0]


def trust_new_key(container: Container, key: str) -> None:
    """``forgeonectl keys generate`` a key pair and put its public half in trusted.d."""
    container.run("forgeonectl", "keys", "generate", "--out", KEYS, "--name", key)
    container.run(
        "install", "-m", "0644", f"{KEYS}/{key}.pub", f"/etc/forgeoned/trusted.d/{key}.pub"
    )


def install_sudo(container: Container) -> None:
    """What a real administrator has and a bare container lacks, for commands of the guide."""
    container.run(
        "install", "-m", "0755", container.put("sudo", SUDO.encode()), "/usr/local/bin/sudo"
    )


def unit_property(container: Container, name: str) -> str:
    out = container.run("systemctl", "show", "-p", name, "--value", "forgeoned").stdout
    return out.strip()


CONFIG = "/etc/forgeoned/forgeoned.toml"
CATALOG = REPO / "systemd/forgeoned.catalog"


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
