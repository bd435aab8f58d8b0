"""The audit log when the disk is full: a clear error, no torn line, nothing lost.

A full disk is simulated per process with RLIMIT_FSIZE (writes past the limit fail with
EFBIG, SIGXFSZ ignored), in a subprocess so the limit does not leak into the test runner.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, resource, signal, sys
from pathlib import Path
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.errors import AuditError

directory = Path(sys.argv[1])
log = AuditLog(directory, ManualClock(), checkpoint_every=3)
for i in range(5):
    log.record(AuditEvent(EventName.PLUGIN_STARTED, plugin="p", version=f"1.{i}.0"))
before = [e["seq"] for e in log.entries()]
size = sum(p.stat().st_size for p in directory.glob("audit-*.jsonl"))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 150, resource.RLIM_INFINITY))
errors = []
for i in range(5):
    try:
        log.record(AuditEvent(EventName.PLUGIN_FAILED, plugin="p", message="x" * 100))
    except AuditError as exc:
        errors.append(str(exc))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
after_full = [e["seq"] for e in log.entries()]
raw = b"".join(p.read_bytes() for p in sorted(directory.glob("audit-*.jsonl")))
recovered = log.record(AuditEvent(EventName.PLUGIN_STARTED, plugin="p", version="2.0.0"))
print(json.dumps({
    "before": before, "after_full": after_full, "errors": errors,
    "ends_with_newline": raw.endswith(b"\\n"), "failures": log.write_failures,
    "recovered_seq": recovered["seq"], "ok": log.verify().ok,
}))
"""


def test_full_disk_refuses_the_event_cleanly_and_keeps_the_chain(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["errors"], "no write failed: the limit did not bite"
    assert all(e.startswith("cannot write the audit log: ") for e in result["errors"])
    assert all("\n" not in e for e in result["errors"])
    # entries recorded before the disk filled are all still there, and no torn line was left
    assert result["after_full"][: len(result["before"])] == result["before"]
    assert result["ends_with_newline"] is True
    assert result["failures"] >= len(result["errors"])
    # once space is back the chain continues and verifies end to end
    assert result["recovered_seq"] == result["after_full"][-1] + 1
    assert result["ok"] is True
