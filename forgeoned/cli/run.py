"""forgeonectl ``run FILE``: the plugin's whole lifecycle in-process, without a daemon, in the
production sandbox (see :mod:`forgeoned.daemon.sandbox`).

Without ``--config`` the run is an author's: unsigned artifacts run (as in development
mode), the harmless capabilities (log, clock, random, kv, metrics) are granted, ``--env`` and
``--secret`` grant exactly what they name, ``--allow-http`` grants outbound origins (the
manifest's request ∩ these, as ``[http.plugins.NAME] allow``), ``--allow-cidr`` the address
exceptions (``allow_cidrs``), ``--bind-secret NAME=HOST`` a credential's hosts
(``credentials``), and ``config_get`` answers the manifest's defaults overlaid by ``--set``.
With ``--config`` the daemon's config decides: its mode and trust store, its capability
policy, its ``[limits]``, its ``[http]`` grants, ``plugins.conf.d``, and first of all
whether the daemon would load the artifact at all (``forgeonectl check``'s verdict,
rollback floor and staging attestation included); the flags that grant are refused then.

Exit status: 0 every export succeeded; 3 the artifact cannot load (signature, manifest, ABI,
ceilings, a refused plugin config); 8 the plugin faulted (trap, fuel, deadline, memory, a
lifecycle export's non-zero status; a replay that diverged); 11 ``handle`` (or the ``--fn``
function) answered non-zero (and nothing faulted); 1 anything else, e.g. a ``--fn`` the
manifest does not list (the daemon's ``bad_request``: nothing runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from forgeoned.adapters.crypto.ed25519 import NaclEd25519
from forgeoned.adapters.crypto.keys import load_trust_dir
from forgeoned.adapters.files.attestations import beside
from forgeoned.adapters.wasm.tape import Tape
from forgeoned.cli.artifacts import read_file
from forgeoned.cli.exitcodes import APPLICATION_ERROR, OK, PLUGIN_FAULT
from forgeoned.cli.run_grants import author_grant, metric_lines, settings
from forgeoned.core.http_grant import HttpPolicy
from forgeoned.core.manifest import Capabilities
from forgeoned.core.manifest_section import read_manifest
from forgeoned.core.trust import Mode, TrustPolicy
from forgeoned.core.wasm_sections import parse_sections
from forgeoned.daemon.artifact_check import check_artifact
from forgeoned.daemon.check import check_config
from forgeoned.daemon.config import Config
from forgeoned.daemon.sandbox import LIFECYCLE, RunOptions, RunReport, run_plugin
from forgeoned.errors import ConfigError, error_from_code

GRANTING = ("allow_http", "allow_cidr", "bind_secret", "set")

UNGATED_KV = 1 << 30


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {value!r}: expected NAME=VALUE")
        out[key] = rest
    return out


def _config(args: argparse.Namespace, name: str) -> tuple[Config, TrustPolicy]:
    if args.config is not None:  # as a start would load it (StrictModes included)
        given = next((f for f in GRANTING if getattr(args, f)), None)
        if given is not None:
            flag = "--" + given.replace("_", "-")
            raise ConfigError(f"{flag}: not with --config (its [http] and plugins.conf.d decide)")
        daemon = check_config(Path(args.config))
        return daemon.config, daemon.trust
    granted = Capabilities(
        log=True, clock=True, random=True, env=frozenset(_pairs(args.env, "--env")),
        secrets=frozenset(_pairs(args.secret, "--secret")), kv_quota_bytes=UNGATED_KV,
        metrics=True,
    )  # fmt: skip
    http = author_grant(args.allow_http, args.allow_cidr, args.bind_secret)
    config = Config(
        path=Path("-"), mode=Mode.DEVELOPMENT, default_policy=granted,
        http=HttpPolicy(plugins={} if http is None else {name: http}),
    )  # fmt: skip
    if args.trust is not None:
        config = replace(config, mode=Mode.PRODUCTION)
        return config, load_trust_dir(Path(args.trust), config.trust)
    return config, TrustPolicy(keys=(), ed25519=NaclEd25519())


def _inputs(args: argparse.Namespace) -> tuple[bytes, ...]:
    if args.input_file is not None:
        return (read_file(Path(args.input_file)),)
    return (args.input.encode(),) if args.input is not None else (b"",)


def cmd_run(args: argparse.Namespace) -> int:
    if args.loop < 1:
        raise ConfigError("--loop must be at least 1")
    path = Path(args.file)
    data = read_file(path)
    name = read_manifest(data, parse_sections(data)).name
    config, trust = _config(args, name)
    sig = Path(f"{path}.sig")
    detached = read_file(sig) if sig.is_file() else None
    if args.config is not None:  # the daemon's verdict first, by the daemon's own checks
        verdict = check_artifact(config, trust, data, detached, path=args.file,
                                 attestations=beside(path))  # fmt: skip
        refusal = next((f for f in verdict.findings if f.code == verdict.reason), None)
        if refusal is not None:
            raise error_from_code(refusal.code, refusal.message)
    tape: Tape | None = None
    if args.replay is not None:
        tape = Tape.load(Path(args.replay), name)
    elif args.record is not None:
        tape = Tape(name)
    opts = RunOptions(
        inputs=_inputs(args), loop=args.loop, env=_pairs(args.env, "--env"),
        secrets={k: Path(v) for k, v in _pairs(args.secret, "--secret").items()},
        kv_dir=Path(args.kv_dir) if args.kv_dir else None, tape=tape,
        function=args.fn or "handle",
        settings=None if args.config is not None else settings(args.set),
    )  # fmt: skip
    report = run_plugin(config, trust, data, detached, opts)
    if tape is not None and args.record is not None:
        tape.save(Path(args.record))
    _print(report, args.json)
    if report.fault is not None:
        print(f"forgeonectl: {report.fault}", file=sys.stderr)
        return PLUGIN_FAULT
    return APPLICATION_ERROR if report.answered is not None else OK


def _print(report: RunReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json(), indent=1))
        return
    for e in report.exports:
        if e.export not in LIFECYCLE:
            sys.stdout.buffer.write(e.output + b"\n")
    sys.stdout.flush()
    err = sys.stderr
    signed = f"signed by {', '.join(report.signers)}" if report.signers else "not verified"
    print(f"{report.name} {report.version} sha256={report.sha256[:16]} ({signed})", file=err)
    for e in report.exports:
        calls = ", ".join(f"{k} x{n}" for k, n in e.hostcalls.items()) or "no host calls"
        print(f"  {e.export:<7} {e.status:<14} {e.duration_s * 1000:8.3f} ms  fuel {e.fuel:>10}  "
              f"memory {e.memory_peak_bytes:>9} B  {calls}", file=err)  # fmt: skip
    for line in report.denials:
        print(f"  denied: {line}", file=err)
    for line in report.logs:
        print(f"  log {line}", file=err)
    for line in metric_lines(report.metrics):
        print(f"  metric {line}", file=err)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("run", help="run a plugin's lifecycle in-process (no daemon)")
    p.add_argument("file", metavar="FILE.wasm")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="TEXT", help="input of each handle call")
    src.add_argument("--input-file", metavar="F", help="input read from a file")
    p.add_argument("--fn", metavar="FUNCTION", help="call this named function, not handle")
    p.add_argument("--loop", type=int, default=1, metavar="N", help="make each call N times")
    p.add_argument("--config", metavar="PATH", help="apply a daemon config (policy, limits)")
    p.add_argument("--trust", metavar="DIR", help="require a signature by a key in DIR")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--secret", action="append", default=[], metavar="NAME=FILE")
    p.add_argument("--allow-http", action="append", default=[], metavar="PATTERN",
                   help="grant an outbound origin, scheme://host:port (repeat)")  # fmt: skip
    p.add_argument("--allow-cidr", action="append", default=[], metavar="CIDR",
                   help="let outbound requests reach this private/loopback range")  # fmt: skip
    p.add_argument("--bind-secret", action="append", default=[], metavar="NAME=HOST",
                   help="{{secret:NAME}} is filled in only for HOST (a --secret)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a plugin config value (VALUE in TOML; else text)")  # fmt: skip
    p.add_argument("--kv-dir", metavar="DIR", help="keep the kv store here (default: none)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    tape = p.add_mutually_exclusive_group()
    tape.add_argument("--record", metavar="FILE", help="save every host interaction")
    tape.add_argument("--replay", metavar="FILE", help="answer host interactions from FILE")
    p.set_defaults(func=cmd_run)
