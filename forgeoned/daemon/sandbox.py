"""``forgeonectl run``: one plugin's whole lifecycle in-process, no daemon, in the production
sandbox — the daemon's compile worker and ABI validation, its runtime (fuel, epoch deadline,
memory cap), its host functions and capability checks — and the manifest's limits (checked
against the operator's ceilings when a config is given).

init → start → ``handle`` or the named function ``--fn F`` (``--loop N`` times) → stop →
unload; each export's status,
duration, fuel, peak memory and host calls (with denials) are measured and reported. A
fault stops the run there (``unload`` is still attempted); a non-zero ``handle`` is the
plugin's answer and the run goes on. A named function is checked as the daemon checks it
(a name its manifest does not list is the daemon's ``bad_request``, before anything runs),
and the provider hooks (config, metrics, outbound HTTP) are the daemon's: see
:mod:`forgeoned.daemon.sandbox_hooks`.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeoned.adapters.control.plugin_routes import checked_function
from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.http.backend import Resolver, SystemResolver
from forgeoned.adapters.http.hook import secret_reader
from forgeoned.adapters.wasm.call_errors import undeclared_function
from forgeoned.adapters.wasm.compile_worker import CompileWorkers, WorkerLimits
from forgeoned.adapters.wasm.hostabi import MAX_SECRET_BYTES
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.module_source import load_module
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.adapters.wasm.tape import Tape, TapeKv
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.artifact import verify_artifact
from forgeoned.core.ceilings import check_code_size, check_manifest
from forgeoned.core.clock import SystemClock
from forgeoned.core.denial_throttle import DenialThrottle
from forgeoned.core.events import AuditEvent
from forgeoned.core.manifest import Manifest
from forgeoned.core.module_interface import require_functions
from forgeoned.core.stats import PluginStats
from forgeoned.core.trust import TrustPolicy
from forgeoned.daemon.config import Config
from forgeoned.daemon.host_services import credentials_dir, grant
from forgeoned.daemon.sandbox_hooks import metrics_report, run_config, run_http, run_metrics
from forgeoned.errors import ApplicationError, BadRequestError, ForgeonedError, PluginFault


@dataclass(slots=True)
class ExportRun:
    export: str
    status: str  # "ok", "status N" (the plugin's answer), or the fault's code
    duration_s: float
    fuel: int
    memory_peak_bytes: int
    hostcalls: dict[str, int]  # "function outcome" -> count
    output: bytes = b""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "export": self.export, "status": self.status, "duration_s": self.duration_s,
            "fuel": self.fuel, "memory_peak_bytes": self.memory_peak_bytes,
            "hostcalls": self.hostcalls,
        }  # fmt: skip
        if self.export not in LIFECYCLE:
            out["output"] = self.output.decode("utf-8", "replace")
            out["output_base64"] = base64.b64encode(self.output).decode("ascii")
        if self.error:
            out["error"] = self.error
        return out


LIFECYCLE = frozenset(e.value for e in LifecycleExport)


@dataclass(slots=True)
class RunReport:
    name: str
    version: str
    sha256: str
    signers: tuple[str, ...] = ()  # empty: unsigned or untrusted (run without --trust/--config)
    exports: list[ExportRun] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)  # hostcall.denied messages
    logs: list[str] = field(default_factory=list)
    fault: ForgeonedError | None = None  # what stopped the run
    answered: ApplicationError | None = None  # the last non-zero handle
    metrics: dict[str, Any] = field(default_factory=dict)  # the plugin's series (sandbox_hooks)
    config_sha256: str = ""  # of the config config_get answered from ("" : none)

    def to_json(self) -> dict[str, Any]:
        return {
            "plugin": self.name, "version": self.version, "sha256": self.sha256,
            "signers": list(self.signers),
            "exports": [e.to_json() for e in self.exports], "denials": self.denials,
            "logs": self.logs, "fault": None if self.fault is None else self.fault.code,
            "metrics": self.metrics, "config_sha256": self.config_sha256 or None,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunOptions:
    inputs: tuple[bytes, ...] = (b"",)  # one handle call per input, per loop
    loop: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)
    kv_dir: Path | None = None
    tape: Tape | None = None
    function: str = "handle"  # or a named function of the manifest (``--fn``)
    settings: Mapping[str, Any] | None = None  # ``--set`` values; None: plugins.conf.d
    resolver: Resolver | None = None  # how outbound HTTP resolves names (default: the system)


class _Collect:
    def __init__(self, report: RunReport) -> None:
        self._report = report

    def record(self, event: AuditEvent) -> None:
        self._report.denials.append(event.message or event.event.label)


def _read_secret(secrets: Mapping[str, Path], daemon: Path | None) -> Callable[[str], bytes | None]:
    """A credential: ``--secret NAME=FILE``, else (with ``--config``) where the daemon reads
    it (``credentials_dir`` or systemd's credentials directory)."""
    fallback = secret_reader(daemon, MAX_SECRET_BYTES)

    def read(name: str) -> bytes | None:
        path = secrets.get(name)
        if path is None:
            return fallback(name)
        try:
            return path.read_bytes()
        except OSError:
            return None

    return read


def _services(
    config: Config, m: Manifest, opts: RunOptions, report: RunReport, stats: PluginStats,
    kv_root: Path, resolver: Resolver,
) -> HostServices:  # fmt: skip
    caps, _, http = grant(config, m.name, m.capabilities)
    tape = opts.tape
    env: Mapping[str, str] = {k: v for k, v in opts.env.items() if k in caps.env}
    kv: KvStore | None = None
    if caps.kv_quota_bytes is not None:
        directory = (opts.kv_dir or kv_root) / m.name
        kv = (
            TapeKv(directory, caps.kv_quota_bytes, tape) if tape is not None
            else KvStore(directory, caps.kv_quota_bytes)
        )  # fmt: skip
    daemon = credentials_dir(config) if opts.settings is None else None  # with --config
    secret = _read_secret(opts.secrets, daemon)
    settings = run_config(config, m, opts.settings, secret)  # refused: the run is too
    report.config_sha256 = settings.sha256
    stats.custom = metrics = run_metrics(m, caps)
    stats.functions = m.functions
    clock = SystemClock()
    return HostServices(
        plugin=m.name, version=m.version, capabilities=caps,
        env=tape.env(env) if tape is not None else env, secrets_dir=None, kv=kv,
        audit=_Collect(report), log=lambda p, lvl, msg: report.logs.append(f"[{lvl}] {msg}"),
        clock=tape.clock(clock) if tape is not None else clock, stats=stats,
        denials=DenialThrottle(), random_bytes=tape.random if tape is not None else None,
        read_secret=tape.secret(secret) if tape is not None else secret,
        config=settings.values, metrics=metrics, functions=frozenset(m.functions),
        http=run_http(config, caps, http, secret, resolver, tape),
    )  # fmt: skip


def _measure(
    report: RunReport, stats: PluginStats, inst: PluginInstance, export: str,
    call: Callable[[], bytes],
) -> ExportRun:  # fmt: skip
    before = stats.totals()
    started = time.monotonic()
    run = ExportRun(export, "ok", 0.0, 0, 0, {})
    try:
        run.output = call()
    except ApplicationError as exc:
        run.status, run.output, run.error = f"status {exc.status}", exc.output, str(exc)
        report.answered = exc
    except (PluginFault, ForgeonedError) as exc:
        run.status, run.error = exc.code, str(exc)
        report.fault = report.fault or exc  # the first fault is what stopped the run
    run.duration_s = time.monotonic() - started
    after = stats.totals()
    run.fuel = after.fuel_consumed - before.fuel_consumed
    run.memory_peak_bytes = inst.memory_bytes
    diff = Counter(after.hostcalls)
    diff.subtract(before.hostcalls)
    run.hostcalls = {f"{fn} {outcome}": n for (fn, outcome), n in sorted(diff.items()) if n}
    report.exports.append(run)
    return run


def run_plugin(
    config: Config, trust: TrustPolicy, data: bytes, detached: bytes | None, opts: RunOptions
) -> RunReport:
    """Run the artifact ``data``; raises ArtifactError/LoadError when it cannot load."""
    art = verify_artifact(data, detached=detached, trust=trust, mode=config.mode, now=time.time())
    m = art.manifest
    check_manifest(config.limits, m)
    function = checked_function(opts.function)
    if function != "handle" and function not in m.functions:  # as the daemon answers it
        raise BadRequestError(str(undeclared_function(m.name, function, m.functions)))
    report = RunReport(m.name, m.version, hashlib.sha256(data).hexdigest(), art.signers)
    cl = config.compile
    workers = CompileWorkers(WorkerLimits(cl.cpu_seconds, cl.memory_bytes, cl.timeout_s, 1), None)
    stats = PluginStats()
    with tempfile.TemporaryDirectory(prefix="forgeonectl-run-") as tmp, WasmtimeRuntime() as rt:
        try:
            module = load_module(rt, workers, art.module, art.sha256,
                                 lambda size: check_code_size(config.limits, m, size))  # fmt: skip
        finally:
            workers.close()
        require_functions(module.interface.exports, m.functions)  # as the daemon's loader
        resolver = opts.resolver or SystemResolver()
        try:
            services = _services(config, m, opts, report, stats, Path(tmp), resolver)
            inst = rt.instantiate(module, m.limits, services)
            try:
                _lifecycle(report, stats, inst, opts, module.has_handle or function != "handle")
            finally:
                inst.close()
                if services.kv is not None:
                    services.kv.close()
        finally:
            if isinstance(resolver, SystemResolver):
                resolver.close()
    report.metrics = metrics_report(stats.custom)
    return report


def _lifecycle(
    report: RunReport, stats: PluginStats, inst: PluginInstance, opts: RunOptions, handle: bool
) -> None:
    def lifecycle(export: LifecycleExport) -> Callable[[], bytes]:
        def call() -> bytes:
            inst.call(export)
            return b""

        return call

    for export in (LifecycleExport.INIT, LifecycleExport.START):
        _measure(report, stats, inst, export.value, lifecycle(export))
        if report.fault is not None:  # a trap or a non-zero status: unload, and stop there
            _measure(report, stats, inst, "unload", lifecycle(LifecycleExport.UNLOAD))
            return
    if handle:
        for _ in range(opts.loop):
            for data in opts.inputs:
                _measure(report, stats, inst, opts.function, _handler(inst, data, opts.function))
                if report.fault is not None:
                    _measure(report, stats, inst, "unload", lifecycle(LifecycleExport.UNLOAD))
                    return
    for export in (LifecycleExport.STOP, LifecycleExport.UNLOAD):
        _measure(report, stats, inst, export.value, lifecycle(export))


def _handler(inst: PluginInstance, data: bytes, export: str) -> Callable[[], bytes]:
    return lambda: inst.handle(data, export)
