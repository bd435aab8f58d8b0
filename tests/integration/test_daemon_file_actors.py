"""Issue 12, item 6 (daemon side): a change of plugins.d is audited with who made it.

Whoever may write plugins.d changes the desired state, so ``plugin.installed``,
``plugin.upgraded`` and ``plugin.removed`` name the uid owning the file (for a removal, the
last owner seen), or the control-API caller when the daemon wrote or deleted the file on its
behalf. The tests run as root: ``chown`` before the rename stands in for another user's copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon_kit import Env, drop, in_process, plugin

NOBODY = 65534
UNNAMED = 424242  # a uid without a passwd entry


def drop_as(plugins: Path, filename: str, data: bytes, uid: int) -> None:
    staged = plugins / f".{filename}.tmp"
    staged.write_bytes(data)
    os.chown(staged, uid, uid)
    staged.rename(plugins / filename)


def test_file_changes_are_credited_to_the_files_owner(tmp_path: Path) -> None:
    env = Env(tmp_path)
    with in_process(env) as d:
        drop_as(env.plugins, "hello.wasm", plugin("hello", "1.0.0"), NOBODY)
        installed = d.events.wait("plugin.installed", "hello")[0]
        assert installed.actor == f"uid={NOBODY}(nobody)"
        drop_as(env.plugins, "hello-2.wasm", plugin("hello", "2.0.0"), UNNAMED)
        assert d.events.wait("plugin.upgraded", "hello")[0].actor == f"uid={UNNAMED}"
        (env.plugins / "hello.wasm").unlink()  # the old version's file: nothing changes
        (env.plugins / "hello-2.wasm").unlink()
        removed = d.events.wait("plugin.removed", "hello")[0]
        assert removed.actor == f"uid={UNNAMED}"  # the last owner of the file that went away
    logged = [e for e in env.audit_events() if e.get("plugin") == "hello"]
    assert [(e["event"], e.get("actor")) for e in logged] == [
        ("plugin.installed", f"uid={NOBODY}(nobody)"),
        ("plugin.upgraded", f"uid={UNNAMED}"),
        ("plugin.removed", f"uid={UNNAMED}"),
    ]


def test_the_start_and_a_root_owned_drop(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with in_process(env) as d:
        assert d.events.wait("plugin.installed", "hello")[0].actor == "uid=0(root)"


def test_api_installs_and_removals_are_credited_to_the_caller(tmp_path: Path) -> None:
    """The daemon writes the file (and would own it): the caller is the actor."""
    env = Env(tmp_path)
    with in_process(env) as d:
        d.daemon.backend.install(plugin("hello", "1.0.0"), "hello.wasm", "uid=1000(alice)")
        assert d.events.wait("plugin.installed", "hello")[0].actor == "uid=1000(alice)"
        d.daemon.backend.remove("hello", "uid=1001(bob)")
        assert d.events.wait("plugin.removed", "hello")[0].actor == "uid=1001(bob)"
        # A later file change is the file owner's again, not the earlier caller's.
        drop_as(env.plugins, "hello.wasm", plugin("hello", "1.0.1"), NOBODY)
        assert d.events.wait("plugin.installed", "hello", count=2)[1].actor == (
            f"uid={NOBODY}(nobody)"
        )
