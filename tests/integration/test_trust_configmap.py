"""A trust store mounted from a Kubernetes ConfigMap (symlinked ``..data`` layout): accepted
by StrictModes, and an update (the ``..data`` swap) seen by the real watcher and reloaded."""

from __future__ import annotations

import os
from pathlib import Path

from configmap_kit import project
from daemon_kit import KEY, Env, drop, in_process, plugin_wat

from forgeoned.adapters.crypto.keys import load_trust_dir, public_key_bytes
from forgeoned.adapters.files.strict_modes import check_trusted_inputs
from forgeoned.cli.devtools import make_signed_plugin, test_key

OTHER = test_key(42)


def _configmap_env(tmp_path: Path) -> Env:
    env = Env(tmp_path)
    (env.root / "trusted.d" / "test.pub").unlink()
    project(env.root / "trusted.d", {"test.pub": public_key_bytes(KEY.public_key)})
    env.write_config("trust_watch = true\n")
    return env


def test_the_configmap_layout_passes_strict_modes_and_other_links_do_not(tmp_path: Path) -> None:
    env = _configmap_env(tmp_path)
    trust = env.root / "trusted.d"
    assert check_trusted_inputs(None, trust, None) == []
    assert [k.name for k in load_trust_dir(trust).keys] == ["test"]
    outside = tmp_path / "elsewhere.pub"
    outside.write_bytes(public_key_bytes(OTHER.public_key))
    (trust / "evil.pub").symlink_to(outside)  # a link of any other shape
    problems = check_trusted_inputs(None, trust, None)
    assert [(p.path.name, p.problem.value) for p in problems] == [("evil.pub", "symlink")]
    (trust / "evil.pub").unlink()
    (trust / "evil.pub").symlink_to("..data/../../elsewhere.pub")  # escapes via ..data
    assert [p.path.name for p in check_trusted_inputs(None, trust, None)] == ["evil.pub"]
    (trust / "evil.pub").unlink()
    stamp = (trust / "..data").readlink()
    os.chmod(trust / stamp / "test.pub", 0o666)  # defaultMode that others could write
    assert [p.problem.value for p in check_trusted_inputs(None, trust, None)] == [
        "writable_by_others"
    ]


def test_a_configmap_update_is_seen_by_the_watcher_and_the_new_key_is_trusted(
    tmp_path: Path,
) -> None:
    env = _configmap_env(tmp_path)
    m = {"name": "other", "version": "1.0.0", "abi": 1}
    drop(env.plugins, "other.wasm", make_signed_plugin(plugin_wat("other@1.0.0"), m, OTHER))
    with in_process(env) as d:
        assert d.events.wait("plugin.rejected", "other")[0].reason == "untrusted_key"
        # the ConfigMap gains the other key: only ..data is swapped, test.pub's link stays
        both = {"test.pub": public_key_bytes(KEY.public_key),
                "ops.pub": public_key_bytes(OTHER.public_key)}  # fmt: skip
        project(env.root / "trusted.d", both)
        reloaded = d.events.wait("daemon.reloaded")[0]
        assert reloaded.actor == "trust-dir-watcher"
        d.events.wait("plugin.installed", "other")
        assert d.invoke("other") == b"other@1.0.0:x"
        # revoke: the key leaves the ConfigMap; what it signed is withdrawn
        project(env.root / "trusted.d", {"test.pub": public_key_bytes(KEY.public_key)})
        d.events.wait("daemon.reloaded", count=2)
        d.events.wait("plugin.removed", "other")
        assert "other" not in {v.name for v in d.daemon.backend.list_plugins()}


def test_a_key_whose_content_changes_is_seen_though_only_the_data_link_moves(
    tmp_path: Path,
) -> None:
    """The pitfall itself: the ConfigMap keeps its key names and one key's bytes change, so the
    kubelet creates and removes no top-level link; only ``..data`` is renamed over."""
    env = Env(tmp_path)
    (env.root / "trusted.d" / "test.pub").unlink()
    unrelated = public_key_bytes(test_key(77).public_key)
    keys = {"test.pub": public_key_bytes(KEY.public_key), "ops.pub": unrelated}
    project(env.root / "trusted.d", keys)
    env.write_config("trust_watch = true\n")
    m = {"name": "other", "version": "1.0.0", "abi": 1}
    drop(env.plugins, "other.wasm", make_signed_plugin(plugin_wat("other@1.0.0"), m, OTHER))
    links = {p.name: os.readlink(p) for p in (env.root / "trusted.d").iterdir()
             if p.is_symlink() and not p.name.startswith("..")}  # fmt: skip
    with in_process(env) as d:
        assert d.events.wait("plugin.rejected", "other")[0].reason == "untrusted_key"
        project(env.root / "trusted.d", {**keys, "ops.pub": public_key_bytes(OTHER.public_key)})
        after = {p.name: os.readlink(p) for p in (env.root / "trusted.d").iterdir()
                 if p.is_symlink() and not p.name.startswith("..")}  # fmt: skip
        assert after == links  # no key link was created or removed
        assert d.events.wait("daemon.reloaded")[0].actor == "trust-dir-watcher"
        d.events.wait("plugin.installed", "other")
        assert d.invoke("other") == b"other@1.0.0:x"
