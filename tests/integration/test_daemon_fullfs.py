"""A state directory on a full filesystem: the swap is rolled back, the old state is intact,
and the new version goes live once there is room again."""

from __future__ import annotations

from pathlib import Path

from daemon_kit import Env, drop, in_process, plugin
from fullfs_kit import fill, tmpfs


def test_full_state_filesystem_keeps_the_old_version_and_state(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.write_config(audit='dir = "audit"')
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    with tmpfs(tmp_path / "state", "512k"), in_process(env) as d:
        assert d.invoke("hello") == b"hello@1.0.0:x"
        state_before = (tmp_path / "state/state.json").read_bytes()
        kept_before = sorted(p.name for p in (tmp_path / "state/artifacts").iterdir())
        filler = fill(tmp_path / "state")

        drop(env.plugins, "hello.wasm", plugin("hello", "2.0.0"))
        [event] = d.events.wait("plugin.rolled_back", "hello")
        assert event.reason == "state_io" and "No space left" in event.message
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert d.view("hello").state == "running"
        assert (tmp_path / "state/state.json").read_bytes() == state_before
        assert sorted(p.name for p in (tmp_path / "state/artifacts").iterdir()) == kept_before
        assert not [p for p in (tmp_path / "state").rglob(".*tmp*")]  # no torn temp files

        filler.unlink()
        d.sync()  # the next rescan retries: the failure was ours, not the artifact's
        d.events.wait("plugin.upgraded", "hello", version="2.0.0")
        assert d.invoke("hello") == b"hello@2.0.0:x"
        assert env.state()["active"]["hello"]["version"] == "2.0.0"
