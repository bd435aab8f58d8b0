"""forgeonectl ``status`` and ``show``: the plugins the daemon runs, as a table and as fields."""

from __future__ import annotations

import argparse
import json
from typing import Any, Final

from forgeoned.cli.control import connect
from forgeoned.cli.exitcodes import OK
from forgeoned.cli.output import print_json, table


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's commands to ``sub``."""
    p = sub.add_parser("status", help="list plugins with version, state and sha256")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--all", action="store_true", help="also the files in plugins.d refused now, and why"
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("show", help="everything about one plugin")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)


def note(entry: dict[str, Any]) -> str:
    """What is wrong with a plugin, in a few words (the ``status`` table's NOTE column)."""
    quarantine = entry.get("quarantine")
    if quarantine:
        return f"quarantined: {quarantine['message']}"
    for cand in entry.get("candidates", []):
        status = str(cand["status"]).replace("_", " ")
        reason = f" ({cand['reason']})" if cand.get("reason") else ""
        return f"{cand['version']} {status}{reason}"
    return ""


def cmd_status(args: argparse.Namespace) -> int:
    with connect(args) as client:
        plugins = client.list_plugins()
        rejected = client.rejected_files() if args.all else []
    if args.json:
        doc: dict[str, Any] = {"plugins": plugins}
        if args.all:
            doc["rejected"] = rejected
        print(json.dumps(doc))
        return OK
    if not plugins:
        print("no plugins")
    else:
        short = [{**p, "sha256": str(p["sha256"])[:16], "note": note(p)} for p in plugins]
        columns = ("name", "version", "state", "sha256")
        print(table(short, (*columns, "note") if any(p["note"] for p in short) else columns))
    if args.all:
        print(f"\nrejected files in plugins.d: {len(rejected) or 'none'}")
        if rejected:
            rows = [{**r, "plugin": _claimed(r), "why": r["message"]} for r in rejected]
            print(table(rows, ("file", "plugin", "reason", "why")))
    return OK


def _claimed(rejection: dict[str, Any]) -> str:
    """``hello 1.0.0``, ``hello 1.0.0?`` (named by a manifest nobody vouched for) or ``-``."""
    name = " ".join(str(rejection[k]) for k in ("plugin", "version") if rejection.get(k))
    mark = "?" if rejection.get("manifest") == "unverified" else ""
    return f"{name}{mark}" if name else "-"


def cmd_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        info = client.show(args.name)
    if args.json:
        print_json(info)
        return OK
    for key in ("name", "version", "state", "sha256", "instances", "memory_bytes"):
        print(field(key, info.get(key)))
    if info.get("last_error"):
        print(field("last_error", f"{info['last_error']} [{info.get('last_error_code')}] "
                                  f"at {info.get('last_error_at')}"))  # fmt: skip
    else:
        print(field("last_error", "-"))
    if quarantine := info.get("quarantine"):
        last = quarantine["last_error"] or "-"
        print(field("quarantine", f"{quarantine['message']} ({quarantine['reason']}) at "
                    f"{quarantine['at']}; last error: {last}"))  # fmt: skip
    for cand in info.get("candidates", []):
        when = f" at {cand['at']}" if cand.get("at") else ""
        why = f" [{cand['reason']}] {cand['message']}" if cand.get("reason") else ""
        print(field("candidate", f"{cand['version']} {cand['status']}{when}{why}"))
    print(field("signers", ", ".join(info.get("signers", [])) or "-"))
    limits = info.get("limits", {})
    print(field("limits", ", ".join(f"{k}={v}" for k, v in sorted(limits.items())) or "-"))
    caps = info.get("capabilities", {})
    print(field("capabilities", describe_capabilities(caps)))
    print(field("secrets", ", ".join(caps.get("secrets", [])) or "-"))
    counters = info.get("counters", {})
    for row in counters.get("calls", []):
        print(field("calls", f"{row['export']} {row['outcome']} = {row['count']}"))
    for key in ("restarts", "fuel_consumed"):
        print(field(key, counters.get(key, 0)))
    return OK


def describe_capabilities(caps: dict[str, Any]) -> str:
    """``log, clock, env=TZ, kv=65536 bytes`` (the secrets get a line of their own)."""
    words = [name for name in ("log", "clock", "random") if caps.get(name)]
    if caps.get("env"):
        words.append(f"env={','.join(caps['env'])}")
    if isinstance(caps.get("kv"), dict):
        words.append(f"kv={caps['kv'].get('quota_bytes')} bytes")
    return ", ".join(words) or "-"


SHOW_KEY_WIDTH: Final = 16  # the longest key ("fuel_consumed:") plus at least one space


def field(key: str, value: object) -> str:
    """One ``key: value`` line of ``show``, values aligned in one column."""
    return f"{key + ':':<{SHOW_KEY_WIDTH}}{value}"
