"""One representative audit event per event name, with the fields its producer really sets.

Used to check the OCSF mapping of every event type and the export formats; a test fails when
an event name is added without a sample here.
"""

from __future__ import annotations

from typing import Any, Final

from forgeoned.core import audit_chain
from forgeoned.core.events import AuditEvent, EventName

SHA: Final = "ab" * 32
KEY: Final = "cd" * 32
_CONTROL: Final = {"rule": "admins", "uid": 1000, "gid": 1000, "pid": 4242, "method": "POST"}

SAMPLES: Final[tuple[AuditEvent, ...]] = (
    AuditEvent(EventName.AUDIT_CHECKPOINT, actor="forgeoned",
               details={"covers_seq": 0, "covers_hash": audit_chain.GENESIS_HASH, "key": KEY,
                        "signature": "ef" * 64}),
    AuditEvent(EventName.DAEMON_STARTED, message="0 plugins restored; 0 running"),
    AuditEvent(EventName.PLUGIN_INSTALLED, plugin="hello", version="1.0.0", sha256=SHA,
               actor="uid=1000(alice)", details={"signers": ["k1"], "file": "hello.wasm"}),
    AuditEvent(EventName.PLUGIN_STARTED, plugin="hello", version="1.0.0", sha256=SHA),
    AuditEvent(EventName.PLUGIN_UPGRADED, plugin="hello", version="1.1.0", sha256=SHA,
               message="1.0.0 -> 1.1.0"),
    AuditEvent(EventName.PLUGIN_REJECTED, reason="signature_invalid",
               message="bad.wasm: no trusted signature", details={"file": "bad.wasm"}),
    AuditEvent(EventName.PLUGIN_FAILED, plugin="hello", version="1.1.0", sha256=SHA,
               reason="trap", message="wasm trap: unreachable"),
    AuditEvent(EventName.PLUGIN_RESTARTED, plugin="hello", version="1.1.0", sha256=SHA,
               reason="trap"),
    AuditEvent(EventName.PLUGIN_QUARANTINED, plugin="hello", version="1.1.0", sha256=SHA,
               reason="restart_budget", message="5 failures within 60s (limit 5)"),
    AuditEvent(EventName.PLUGIN_ROLLED_BACK, plugin="hello", version="1.2.0", sha256=SHA,
               reason="init_failed", message="init returned 1"),
    AuditEvent(EventName.PLUGIN_PAUSED, plugin="hello", version="1.1.0", sha256=SHA,
               actor="uid=0(root)"),
    AuditEvent(EventName.PLUGIN_RESUMED, plugin="hello", version="1.1.0", sha256=SHA,
               actor="uid=0(root)"),
    AuditEvent(EventName.PLUGIN_RESET, plugin="hello", version="1.1.0", sha256=SHA,
               actor="uid=0"),
    AuditEvent(EventName.PLUGIN_DOWNGRADE_ALLOWED, plugin="hello", version="1.0.0",
               sha256=SHA, actor="uid=0(root)", reason="downgrade"),
    AuditEvent(EventName.PLUGIN_UNSIGNED_LOADED, plugin="dev", version="0.1.0", sha256=SHA,
               reason="unsigned", message="development mode: loading an artifact production "
               "would reject"),
    AuditEvent(EventName.PLUGIN_CONFIGURED, plugin="hello", version="1.1.0",
               message="plugin hello: configuration 0123456789ab in force",
               details={"config_sha256": SHA, "keys": ["greeting"]}),
    AuditEvent(EventName.PLUGIN_CONFIG_REFUSED, plugin="hello", version="1.1.0",
               reason="plugin_config_invalid",
               message="plugins.conf.d/hello.toml: greeting: expected a string"),
    AuditEvent(EventName.HOSTCALL_DENIED, plugin="hello", version="1.1.0", reason="capability",
               message="plugin hello was denied env_get(HOME)",
               details={"function": "env_get", "target": "HOME"}),
    AuditEvent(EventName.CONTROL_DENIED, plugin="hello", actor="uid=1001(bob)",
               reason="default-deny", message="uid=1001(bob) may not pause plugin hello",
               details={**_CONTROL, "action": "pause", "path": "/v1/plugins/hello/pause"}),
    AuditEvent(EventName.CONTROL_REQUESTED, plugin="hello", actor="uid=1000(alice)",
               details={**_CONTROL, "action": "install", "path": "/v1/plugins"}),
    AuditEvent(EventName.CONTROL_ACTION, plugin="hello", actor="uid=1000(alice)", reason="ok",
               message="uid=1000(alice) remove: ok",
               details={**_CONTROL, "method": "DELETE", "action": "remove",
                        "path": "/v1/plugins/hello"}),
    AuditEvent(EventName.PLUGIN_CALLS, plugin="hello", actor="uid=1000(alice)", reason="ok",
               message="uid=1000(alice) called hello handle 42 times (ok)",
               details={"function": "handle", "count": 42, "total_ms": 12.5, "max_ms": 1.2,
                        "first": "2026-01-01T00:00:00.000000Z",
                        "last": "2026-01-01T00:00:59.000000Z", "interval_s": 60.0}),
    AuditEvent(EventName.PLUGIN_STOPPED, plugin="hello", version="1.1.0", sha256=SHA,
               reason="shutdown"),
    AuditEvent(EventName.PLUGIN_REMOVED, plugin="hello", version="1.1.0", sha256=SHA,
               actor="uid=1000(alice)"),
    AuditEvent(EventName.DAEMON_RELOADED, actor="uid=0(root)", reason="sighup"),
    AuditEvent(EventName.SOURCE_SYNCED, plugin="hello", version="1.3.0", sha256=SHA,
               message="oci://127.0.0.1:5000/p/hello:1.3 -> hello.wasm",
               details={"source": "hello", "reference": "oci://127.0.0.1:5000/p/hello:1.3",
                        "digest": "sha256:" + SHA, "file": "hello.wasm"}),
    AuditEvent(EventName.SOURCE_FAILED, reason="registry_unreachable",
               message="oci://127.0.0.1:5000/p/hello:1.3: connection refused",
               details={"source": "hello", "reference": "oci://127.0.0.1:5000/p/hello:1.3",
                        "digest": None, "file": "hello.wasm"}),
    AuditEvent(EventName.CONFIG_INSECURE, reason="insecure_path",
               message="trusted.d/x.pub is writable by others",
               details={"paths": ["trusted.d/x.pub"]}),
    AuditEvent(EventName.AUDIT_RECOVERED, actor="forgeoned", reason="torn_write",
               message="dropped a torn final line (12 bytes) from audit-000001.jsonl",
               details={"file": "audit-000001.jsonl", "offset": 100, "bytes": 12,
                        "sha256": SHA, "saved_as": "torn-audit-000001-1.bin"}),
    AuditEvent(EventName.AUDIT_GAP, actor="forgeoned", reason="write_failed",
               message="the audit log could not be written", details={"kind": "write_failed"}),
    AuditEvent(EventName.AUDIT_GAP, actor="forgeoned", reason="truncated",
               message="the audit log ends at seq 3 but its anchor is at seq 9",
               details={"kind": "truncated", "anchor_seq": 9, "found_seq": 3}),
    AuditEvent(EventName.AUDIT_GAP, actor="forgeoned", reason="new_chain",
               message="a new audit chain where one existed", details={"kind": "new_chain"}),
    AuditEvent(EventName.PLUGIN_RETRY_ALLOWED, plugin="hello", version="1.2.0", sha256=SHA,
               actor="uid=0(root)", reason="init_failed",
               message="may be tried again: 1.2.0 (rolled_back)"),
    AuditEvent(EventName.PLUGIN_REVIEWED, plugin="hello", version="1.2.0", sha256=SHA,
               actor="uid=1000(alice)", message="code and grants read, no change",
               details={"note": "code and grants read, no change", "next_due": 1.78e9}),
    AuditEvent(EventName.DAEMON_RELOAD_FAILED, actor="uid=0(root)", reason="config_invalid",
               message="forgeoned.toml: [control] socket_mode must be an octal string"),
    AuditEvent(EventName.AUDIT_ARCHIVED, actor="forgeoned", reason="removed",
               message="1 audit file(s) removed by the retention policy: entries 1..1200",
               details={"files": ["audit-000001.jsonl"], "first_seq": 1, "last_seq": 1200,
                        "last_hash": SHA, "archive_dir": None, "keep_files": 4}),
    AuditEvent(EventName.AUDIT_KEY_ROTATED, actor="uid=0(root)",
               message="checkpoint key cdcd… hands over to abab…",
               details={"old_key": KEY, "new_key": "ab" * 32, "signature": "ef" * 64}),
    AuditEvent(EventName.DAEMON_STOPPED),
)  # fmt: skip


def sealed() -> list[dict[str, Any]]:
    """The samples as a chain of stored entries (seq 1…, linked hashes, one second apart)."""
    out: list[dict[str, Any]] = []
    prev = audit_chain.GENESIS_HASH
    for seq, event in enumerate(SAMPLES, start=1):
        entry = audit_chain.seal(event.fields(), seq, audit_chain.rfc3339(1.7e9 + seq), prev)
        prev = entry["hash"]
        out.append(entry)
    return out
