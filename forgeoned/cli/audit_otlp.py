"""forgeonectl ``audit otlp``: ship the audit trail to an OTLP/HTTP logs endpoint.

It reads the daemon's follow stream (or, with ``--once``, the entries there are now), sends
them in batches through OpenTelemetry's SDK (:mod:`forgeoned.adapters.otlp.exporter`) and,
after each batch the endpoint accepted, writes the next seq to ``--position``. Started again,
it resumes there: nothing acknowledged is lost or sent twice. A batch the endpoint refuses
ends the run (non-zero, naming the seq to resume from), having sent nothing beyond it.
Without ``--from-seq`` or a position it starts at entry 1 (entries the retention policy took
away are skipped, with a warning). Runs as its own service (the daemon does not load the SDK).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from forgeoned import __version__
from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.cli.exitcodes import OK
from forgeoned.errors import AuditError, BadRequestError, UnreachableError

FLUSH_S: Final = 1.0  # a partial batch goes out after this long without a new entry
_END: Final = object()


def register(audit_sub: argparse._SubParsersAction[Any]) -> None:
    p = audit_sub.add_parser(
        "otlp", help="send audit entries to an OTLP/HTTP logs endpoint (OpenTelemetry)"
    )
    p.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:4318/v1/logs")
    p.add_argument("--from-seq", type=int, metavar="N", help="start at entry N")
    p.add_argument("--position", type=Path, help="file keeping the next seq to send")
    p.add_argument("--batch", type=int, default=512, help="entries per request (default 512)")
    p.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                   help="an HTTP header for the endpoint (repeatable)")  # fmt: skip
    p.add_argument("--once", action="store_true", help="send what is there now, then exit")
    p.set_defaults(func=cmd_otlp)


def cmd_otlp(args: argparse.Namespace) -> int:
    from forgeoned.adapters.otlp.exporter import OtlpShipper  # the SDK only when used

    start = args.from_seq if args.from_seq is not None else _position(args.position) or 1
    if start is not None and start < 1:
        raise BadRequestError(f"--from-seq must be at least 1, not {start}")
    headers = dict(h.split("=", 1) for h in args.header if "=" in h)
    shipper = OtlpShipper(args.endpoint, __version__, headers)
    next_seq = start or 1
    try:
        with ControlClient(args.socket, timeout=None) as client:
            for batch in _batches(_entries(client, start, once=args.once), args.batch):
                if not shipper.send(batch):
                    raise AuditError(
                        f"the OTLP endpoint refused entries {batch[0]['seq']}..{batch[-1]['seq']}"
                        f" (resume with --from-seq {next_seq})"
                    )
                next_seq = int(batch[-1]["seq"]) + 1
                if args.position is not None:
                    atomic_write(args.position, f"{next_seq}\n".encode(), mode=0o644)
    except UnreachableError as exc:  # the daemon stopped: say where to go on
        raise UnreachableError(f"{exc}; resume with --from-seq {next_seq}") from exc
    finally:
        shipper.close()
    print(f"sent the audit entries up to {next_seq - 1} to {args.endpoint}")
    return OK


def _position(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise AuditError(f"{path} does not hold a seq: {exc}") from exc


def _entries(client: ControlClient, start: int | None, *, once: bool) -> Iterator[dict[str, Any]]:
    if once:
        for line in client.audit_lines("ndjson", None):
            entry = json.loads(line)
            if start is None or int(entry["seq"]) >= start:
                yield entry
        return
    while True:
        for line in client.audit_follow("json", start):
            item = json.loads(line)
            if "error" not in item:
                yield item
                continue
            error = item["error"]
            if error.get("code") == "archived":  # gone by the retention policy: go on after
                print(f"forgeonectl: {error.get('message')}", file=sys.stderr)
                start = int(error["resume_from_seq"])
                break
            raise AuditError(f"{error.get('message')} (resume with --from-seq "
                             f"{error.get('resume_from_seq')})")  # fmt: skip
        else:
            return


def _batches(entries: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """``entries`` in lists of at most ``size``; a partial list goes out once no entry came
    for :data:`FLUSH_S` (the entries are read on a thread of their own)."""
    q: queue.Queue[object] = queue.Queue(maxsize=max(1, size) * 2)
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for entry in entries:
                q.put(entry)
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)
        finally:
            q.put(_END)

    threading.Thread(target=read, name="forgeonectl-otlp-read", daemon=True).start()
    batch: list[dict[str, Any]] = []
    while True:
        try:
            item = q.get(timeout=FLUSH_S)
        except queue.Empty:
            if batch:
                yield batch
                batch = []
            continue
        if item is _END:
            break
        batch.append(item)  # type: ignore[arg-type]
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
    if failure:
        raise failure[0]
