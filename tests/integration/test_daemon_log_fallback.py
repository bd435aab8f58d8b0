"""journald configured but unreachable: a plugin's log lines and the audit echoes reach the
daemon's stderr instead, with level names and the plugin's name, still rate limited.

The daemon runs in a private mount namespace where ``/run/systemd/journal`` is an empty
tmpfs (as on a host whose journald is down), so nothing can reach journald; it needs root
and ``unshare``, and is skipped without them.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, Daemon, Env, drop, manifest

from forgeoned.adapters.audit.journald import JOURNAL_SOCKET
from forgeoned.cli.devtools import make_signed_plugin

NO_JOURNAL = (
    "unshare", "--mount", "--propagation", "private", "sh", "-c",
    f'mount -t tmpfs none {Path(JOURNAL_SOCKET).parent} && exec "$@"', "sh",
)  # fmt: skip
BURST = 200  # PluginLogSink's default burst

# handle: input "levels" logs one line at each level 0..4; "flood" logs 1000 lines
LOGGER = f"""(module
  (import "forgeone" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "level line")
  (data (i32.const 32) "flood line")
  {lifecycle_exports()}
  {ALLOC}
  (func (export "handle") (param $p i32) (param $l i32) (result i32) (local $i i32)
    (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 108))
      (then (loop $each
        (drop (call $log (local.get $i) (i32.const 16) (i32.const 10)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $each (i32.lt_u (local.get $i) (i32.const 5)))))
      (else (loop $many
        (drop (call $log (i32.const 1) (i32.const 32) (i32.const 10)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $many (i32.lt_u (local.get $i) (i32.const 1000))))))
    i32.const 0))"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
def test_with_journald_down_plugin_logs_and_audit_echoes_go_to_stderr(tmp_path: Path) -> None:
    env = Env(tmp_path, journald=True)
    env.write_config()
    m = manifest("loud", "1.0.0", capabilities={"log": True})
    drop(env.plugins, "loud.wasm", make_signed_plugin(LOGGER, m, KEY))
    d = Daemon(env, {"FORGEONED_LOG_LEVEL": "DEBUG"}, prefix=NO_JOURNAL)
    assert d.proc.stderr is not None
    err: list[str] = []  # read all along: a full pipe would block the daemon
    reader = threading.Thread(target=lambda: err.extend(d.proc.stderr or []), daemon=True)
    reader.start()
    try:
        d.ready()
        with d.client() as c:
            c.invoke("loud", b"levels")
            c.invoke("loud", b"flood")
            stats = c.show("loud")["counters"]
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0
        reader.join(30)
    finally:
        d.kill()
    lines = [line.rstrip("\n") for line in err]
    for name in ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR"):
        assert f"{name} forgeoned.plugin: loud: level line" in lines, name
    floods = lines.count("INFO forgeoned.plugin: loud: flood line")
    # the burst less the five level lines, plus the few the bucket refilled meanwhile (50/s):
    # rate limited as with journald, far from the 1000 logged
    assert BURST - 5 <= floods <= 2 * BURST
    assert stats["log_dropped"] == 1000 - floods
    assert any(" forgeoned.audit: plugin.installed: loud 1.0.0" in line for line in lines)
