"""CPU of one periodic audit chain check on a large log: a full pass versus an incremental one.

Builds a log of ``--entries`` entries (default 1,000,000; each about the size of a
``control.action`` entry, a signed checkpoint every 1,000, files rotated at 16 MiB) directly
with the chain's own sealing code and the daemon's checkpoint key, then opens it with the
daemon's :class:`~forgeoned.adapters.audit.log.AuditLog` (with its anchor in a state file,
as the daemon has it) and measures, in CPU seconds of this
process (``time.process_time``):

* ``full``: ``verify()`` from seq 1, what every periodic check cost before;
* ``incremental, N new``: ``verify(incremental=True)`` after N more entries were recorded
  through the log (N = ``--new``, default 1,000: a busy 10 minutes), what a periodic check
  costs now; and with nothing new.

    .venv/bin/python bench/audit_verify.py [--entries 1000000] [--new 1000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from forgeoned.adapters.audit.anchor import AnchorKeeper
from forgeoned.adapters.audit.files import log_path
from forgeoned.adapters.audit.key import CheckpointKey
from forgeoned.adapters.audit.log import AuditLog
from forgeoned.adapters.audit.trail import AuditTrail
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.adapters.files.state_store import StateStore
from forgeoned.core import audit_chain
from forgeoned.core.audit_chain import SignedHead
from forgeoned.core.clock import SystemClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.stats import DaemonStats

ROTATE = 16 << 20
CHECKPOINT_EVERY = 1000


def build(directory: Path, entries: int) -> int:
    """Write a valid log of ``entries`` entries; returns its size in bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    key = CheckpointKey.load_or_create(directory / "checkpoint.key")
    index, size, total, prev = 1, 0, 0, audit_chain.GENESIS_HASH
    out = log_path(directory, index).open("wb")
    ts = audit_chain.rfc3339(time.time())
    head: SignedHead | None = None
    for seq in range(1, entries + 1):
        if seq % CHECKPOINT_EVERY == 1:
            signature = key.sign(audit_chain.checkpoint_message(seq - 1, prev))
            fields = {"event": "audit.checkpoint", "actor": "forgeoned",
                      "details": {"covers_seq": seq - 1, "covers_hash": prev,
                                  "key": key.public_hex, "signature": signature}}  # fmt: skip
        else:
            fields = {"event": "control.action", "actor": "uid=1000(alice)", "plugin": "billing",
                      "reason": "ok", "message": f"uid=1000(alice) pause: ok ({seq})",
                      "details": {"action": "pause", "rule": "ops", "uid": 1000, "gid": 1000,
                                  "pid": 4242, "method": "POST",
                                  "path": "/v1/plugins/billing/pause"}}  # fmt: skip
        entry, data = audit_chain.seal_line(fields, seq, ts, prev)
        if size and size + len(data) > ROTATE:
            out.close()
            index, size = index + 1, 0
            out = log_path(directory, index).open("wb")
        out.write(data)
        size += len(data)
        total += len(data)
        prev = entry["hash"]
        if fields["event"] == "audit.checkpoint":
            sig = key.sign(audit_chain.checkpoint_message(seq, prev))
            head = SignedHead(seq, prev, key.public_hex, sig)
    out.close()
    assert head is not None
    atomic_write(directory / "head.json", audit_chain.canonical(head.to_dict()))
    return total


def cpu(run: object) -> float:
    start = time.process_time()
    result = run()  # type: ignore[operator]
    elapsed = time.process_time() - start
    assert result.ok, result
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp) / "audit"
        started = time.monotonic()
        size = build(directory, args.entries)
        print(f"built {args.entries:,} entries, {size / 1e6:.1f} MB "
              f"in {time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        log = AuditLog(directory, SystemClock(), checkpoint_every=CHECKPOINT_EVERY)
        # as in the daemon: every verdict is also held against the anchor in state.json
        (Path(tmp) / "state").mkdir()
        AnchorKeeper(StateStore(Path(tmp) / "state"), log,
                     AuditTrail(log, None, DaemonStats())).start()  # fmt: skip
        try:
            fulls, news, idles = [], [], []
            for _ in range(args.rounds):
                fulls.append(cpu(log.verify))
                for i in range(args.new):
                    event = AuditEvent(
                        EventName.CONTROL_ACTION, actor="uid=1000(alice)", message=f"new {i}"
                    )
                    log.record(event)
                news.append(cpu(lambda: log.verify(incremental=True)))
                idles.append(cpu(lambda: log.verify(incremental=True)))
            report = {
                "entries": args.entries, "bytes": size, "rounds": args.rounds,
                "full_cpu_s": statistics.median(fulls),
                f"incremental_{args.new}_new_cpu_s": statistics.median(news),
                "incremental_nothing_new_cpu_s": statistics.median(idles),
                "incremental_runs": log.verifier.incremental_runs,
            }  # fmt: skip
        finally:
            log.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
