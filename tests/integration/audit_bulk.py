"""A large, valid audit log written fast (no fsync per entry), for memory and speed tests.

The entries, checkpoints and signed head are what :class:`AuditLog` would write (same chain
code, same key format), only without an ``fdatasync`` per entry: the daemon verifies it at
start like any other log.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from forgeoned.adapters.audit.key import CheckpointKey
from forgeoned.core import audit_chain
from forgeoned.core.audit_chain import SignedHead
from forgeoned.core.events import AuditEvent, EventName

ROTATE_BYTES = 16 << 20  # as AuditLog's default


def write_log(directory: Path, min_bytes: int, start: float = 1.7e9) -> int:
    """Write at least ``min_bytes`` of log into ``directory``; returns the number of entries."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = CheckpointKey.load_or_create(directory / "checkpoint.key")
    index, size, total, seq, prev = 1, 0, 0, 0, audit_chain.GENESIS_HASH
    out = (directory / f"audit-{index:06d}.jsonl").open("wb")

    def append(fields: dict[str, object]) -> None:
        nonlocal seq, prev, size, total, index, out
        ts = audit_chain.rfc3339(start + seq)
        entry, line = audit_chain.seal_line(fields, seq + 1, ts, prev)
        if size + len(line) > ROTATE_BYTES:
            out.close()
            index, size = index + 1, 0
            out = (directory / f"audit-{index:06d}.jsonl").open("wb")
        out.write(line)
        size += len(line)
        total += len(line)
        seq, prev = entry["seq"], entry["hash"]

    def checkpoint() -> None:
        signature = key.sign(audit_chain.checkpoint_message(seq, prev))
        append({"event": audit_chain.CHECKPOINT_EVENT, "actor": "forgeoned",
                "details": {"covers_seq": seq, "covers_hash": prev, "key": key.public_hex,
                            "signature": signature}})  # fmt: skip

    checkpoint()
    i = 0
    while total < min_bytes:
        i += 1
        event = AuditEvent(
            EventName.HOSTCALL_DENIED if i % 3 else EventName.CONTROL_DENIED,
            plugin=f"plugin-{i % 17}",
            version="1.0.0",
            actor="uid=1000(alice)" if i % 3 == 0 else None,
            reason="capability",
            message=f"plugin plugin-{i % 17} was denied env_get(HOME_{i})",
            details={"function": "env_get", "target": f"HOME_{i}", "path": "/v1/plugins/x"},
        )
        append(event.fields())
        if i % 1000 == 0:
            checkpoint()
    checkpoint()
    out.close()
    head_sig = key.sign(audit_chain.checkpoint_message(seq, prev))
    head = SignedHead(seq, prev, key.public_hex, head_sig)
    (directory / "head.json").write_bytes(audit_chain.canonical(head.to_dict()))
    return seq


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> None:
    """Start ``VmHWM`` over from the current RSS (Linux ``clear_refs`` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# forgeonectl, reporting its own peak RSS at exit (``VmHWM`` of its image, not counting what
# it inherited from the forking test process, which rusage's ``ru_maxrss`` would include).
_MEASURED = """
import sys
from forgeoned.cli import main
code = main(sys.argv[1:])
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("VmHWM", peak, file=sys.stderr)
sys.exit(code)
"""


def forgeonectl_peak_kib(args: list[str], env: dict[str, str], stdout: int) -> tuple[int, int]:
    """Run ``forgeonectl ARGS``; its exit status and its peak RSS in KiB."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    peak = [line for line in proc.stderr.splitlines() if line.startswith("VmHWM ")]
    assert peak, proc.stderr
    return proc.returncode, int(peak[-1].split()[1])
