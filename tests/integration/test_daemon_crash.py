"""``kill -9`` at every step of a swap: a restart brings back exactly the old or the new version.

The daemon SIGKILLs itself at the chosen step (``FORGEONED_FAULT_AT``). v2 comes in a second
file that the test deletes before the restart, so plugins.d asks for v1 again: whatever the
state file recorded at the moment of the kill is what must run after the restart (v1 before
COMMIT; v2 after it, which a lower v1 file cannot replace).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from daemon_kit import Daemon, Env, drop, plugin

from forgeoned.core.swapper import Step

COMMITTED = {Step.RELEASE, Step.STOP_OLD}  # the old version is stopped after the commit


@pytest.mark.parametrize("step", list(Step), ids=lambda s: s.value)
def test_kill_9_at_each_step_of_a_swap(tmp_path: Path, step: Step) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    first = Daemon(env)
    first.ready()
    assert first.invoke("hello") == b"hello@1.0.0:x"
    assert first.stop() == 0

    doomed = Daemon(env, {"FORGEONED_FAULT_AT": f"{step.value}:hello@2.0.0"})
    doomed.ready()
    drop(env.plugins, "hello-2.wasm", plugin("hello", "2.0.0"))
    assert doomed.proc.wait(60) == -9
    doomed.close()

    state = env.state()
    record = state["active"]["hello"]
    expected = "2.0.0" if step in COMMITTED else "1.0.0"
    assert record["version"] == expected
    assert state["floors"]["hello"]["version"] == expected
    kept = (env.root / "state/artifacts" / f"{record['sha256']}.wasm").read_bytes()
    assert hashlib.sha256(kept).hexdigest() == record["sha256"]

    (env.plugins / "hello-2.wasm").unlink()
    again = Daemon(env)
    try:
        again.ready()
        assert again.invoke("hello") == f"hello@{expected}:x".encode()
        status = again.status()["hello"]
        assert (status["version"], status["state"]) == (expected, "running")
        assert status["sha256"] == record["sha256"]
        with again.client() as c:
            assert c.audit_verify()["ok"] is True
    finally:
        assert again.stop() == 0
