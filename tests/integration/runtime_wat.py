"""Inline-WAT plugins and host fakes for the runtime tests (importable by other test modules).

``plugin_wat(...)`` assembles an ABI v1 module from snippets: every lifecycle export returns 0
unless a body is given for it, so a test spells out only what it is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import wasmtime
from abi_wat import ALLOC, lifecycle_exports

from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.core.abi import HOST_FUNCTIONS, LifecycleExport
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent
from forgeoned.core.manifest import Capabilities
from forgeoned.core.stats import PluginStats

_WAT_TYPES = {"i32": "i32", "i64": "i64"}


def import_decl(name: str) -> str:
    sig = HOST_FUNCTIONS[name].sig
    params = " ".join(f"(param {t})" for t in sig.params)
    results = " ".join(f"(result {t})" for t in sig.results)
    return f'(import "forgeone" "{name}" (func ${name} {params} {results}))'


def plugin_wat(
    *,
    imports: tuple[str, ...] = (),
    memory: str = '(memory (export "memory") 1)',
    bodies: dict[str, str] | None = None,
    handle: str | None = None,
    extra: str = "",
    omit: tuple[str, ...] = (),
    head: str = "",
) -> bytes:
    """An ABI v1 module. ``bodies`` maps a lifecycle export to its body (leaving an i32);
    ``handle`` is the body of ``handle(ptr, len)`` (alloc then returns a fixed 1024); ``head``
    goes first (raw imports), ``extra`` last."""
    bodies = bodies or {}
    parts = [head, *(import_decl(name) for name in imports)]
    parts.append(memory)
    parts.append(lifecycle_exports(bodies, omit))
    if handle is not None:
        parts.append(ALLOC)
        parts.append(
            f'(func (export "handle") (param $ptr i32) (param $len i32) (result i32) {handle})'
        )
    parts.append(extra)
    return bytes(wasmtime.wat2wasm("(module " + "\n".join(parts) + ")"))


@dataclass
class RecordingAudit:
    events: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


@dataclass
class RecordingLog:
    lines: list[tuple[str, int, str]] = field(default_factory=list)

    def __call__(self, plugin: str, level: int, message: str) -> None:
        self.lines.append((plugin, level, message))


FULL_CAPS = Capabilities(
    log=True,
    clock=True,
    random=True,
    env=frozenset({"TZ"}),
    secrets=frozenset({"api-token"}),
    kv_quota_bytes=64,
)


@dataclass
class Host:
    """A HostServices plus the fakes behind it, for assertions."""

    services: HostServices
    audit: RecordingAudit
    log: RecordingLog
    stats: PluginStats
    clock: ManualClock


def make_host(
    tmp: Path,
    caps: Capabilities = FULL_CAPS,
    env: dict[str, str] | None = None,
    name: str = "t",
) -> Host:
    audit, log, stats, clock = RecordingAudit(), RecordingLog(), PluginStats(), ManualClock()
    secrets = tmp / "creds"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "api-token").write_bytes(b"s3cret")
    kv = KvStore(tmp / "kv", caps.kv_quota_bytes) if caps.kv_quota_bytes is not None else None
    services = HostServices(
        plugin=name,
        version="1.0.0",
        capabilities=caps,
        env={"TZ": "Europe/Paris"} if env is None else env,
        secrets_dir=secrets,
        kv=kv,
        audit=audit,
        log=log,
        clock=clock,
        stats=stats,
    )
    return Host(services, audit, log, stats, clock)


ECHO_WAT = plugin_wat(imports=("output",), handle="local.get $ptr local.get $len call $output")


def assert_runtime_healthy(runtime: object, tmp: Path) -> None:
    """The runtime still compiles, instantiates and runs a good plugin end to end."""
    from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
    from forgeoned.core.manifest import Limits

    assert isinstance(runtime, WasmtimeRuntime)
    host = make_host(tmp / "healthy", name="healthy")
    with runtime.instantiate(runtime.compile(ECHO_WAT), Limits(), host.services) as inst:
        for export in LifecycleExport:
            inst.call(export)
        assert inst.handle(b"still alive") == b"still alive"
