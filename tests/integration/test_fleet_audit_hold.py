"""Issue 12's rule for OCI sources: a sync changes the desired state, so it does not happen
while the audit log cannot be written. With the state directory (and its audit log) on a
full file system and the tag moved to a new version, nothing lands in plugins.d, the source
says it is held, ``pull`` is refused (503 ``audit_unavailable``, exit 10) and the running
version keeps serving; once there is room the held sync happens by itself and is audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemon_kit import plugin
from fleet_kit import fleet
from fullfs_kit import fill, tmpfs
from registry_kit import REGISTRY
from test_daemon_audit_outage import call, exhaust

from forgeoned.core.sources import SyncOutcome

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")


def test_a_sync_is_held_while_the_audit_log_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "daemon" / "state", "4m"), fleet(tmp_path) as f:
        assert f.running() == "1.0.0"
        before = sorted((p.name, p.read_bytes()) for p in f.env.plugins.iterdir())
        filler = fill(tmp_path / "daemon" / "state")
        exhaust(f.d, f.env.socket)
        f.push(plugin("hello", "2.0.0"))  # the tag moves while the daemon is degraded

        # the follower's own poll holds, without contacting the registry
        assert f.d.parts.sources.sync("hello").outcome is SyncOutcome.HELD
        # a forced sync is refused like every other change: 503 audit_unavailable, exit 10
        status, answer = call(f.env.socket, "POST", "/v1/sources/hello/pull")
        assert status == 503 and answer["error"]["code"] == "audit_unavailable"
        capsys.readouterr()
        assert f.ctl("pull", "hello") == 10
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot write the audit log" in err[0]
        assert f.ctl("sources") == 0
        assert "held: audit log not writable" in capsys.readouterr().out
        assert f.ctl("sources", "--json") == 0
        [row] = json.loads(capsys.readouterr().out)["sources"]
        assert row["outcome"] == "held" and row["failing_since"] is None
        [record] = f.d.parts.sources.records()  # forgeone_source_syncs_total{outcome="held"}
        assert record.syncs["held"] == 3 and not record.failures

        # nothing landed: plugins.d byte for byte as before, no temp file; 1.0.0 serves on
        assert sorted((p.name, p.read_bytes()) for p in f.env.plugins.iterdir()) == before
        assert f.running() == "1.0.0" and f.d.invoke("hello") == b"hello@1.0.0:x"
        assert f.d.events.labels("hello").count("source.synced") == 1  # the start's only

        # room again: the audit.gap first, then the held sync by itself, recorded before
        # it lands, then the swap
        filler.unlink()
        [synced] = f.d.events.wait("source.synced", "hello", version="2.0.0")
        assert synced.details["source"] == "hello"
        f.d.events.wait("plugin.upgraded", "hello", version="2.0.0")
        assert f.running() == "2.0.0" and f.d.invoke("hello") == b"hello@2.0.0:x"
        entries = list(f.d.daemon.backend.audit_entries(None))
        labels = [(e["event"], e.get("version")) for e in entries]
        gap = labels.index(("audit.gap", None))
        assert labels.index(("source.synced", "2.0.0")) > gap
        assert labels.index(("source.synced", "2.0.0")) < labels.index(("plugin.upgraded", "2.0.0"))
        assert f.ctl("audit", "verify") == 0
