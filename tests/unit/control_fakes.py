"""Hand-written fakes of the control API's ports: a daemon in memory and an audit sink."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from forgeoned.core.audit_chain import parse_rfc3339
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.policy import Target
from forgeoned.core.ports import INSTALL_WAIT_S, InstallReport
from forgeoned.core.stats import PluginStats, PluginView
from forgeoned.errors import (
    ApplicationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PluginPausedError,
    PluginTrap,
    SignatureError,
    SignatureReason,
    TrapKind,
    UnavailableError,
)

SIGNED_MAGIC = b"\0asm-signed"  # what FakeBackend.install accepts as a trusted artifact


@dataclass
class FakePlugin:
    name: str
    version: str = "1.0.0"
    state: str = "running"
    signers: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    functions: tuple[str, ...] = ()


@dataclass
class FakeBackend:
    """A daemon in memory: plugins by name, every call recorded in ``calls``."""

    plugins: dict[str, FakePlugin] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    written: dict[str, bytes] = field(default_factory=dict)  # "plugins.d"
    audit_log: list[dict[str, Any]] = field(default_factory=list)
    broken_at: int | None = None
    gate: threading.Event | None = None  # when set, invoke waits for it (bounded)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0  # invokes in flight through invoke_now
    call_timeout_s: float = 1.0  # every plugin's call timeout (as its manifest's limits)

    @classmethod
    def with_plugins(cls, *names: str) -> Self:
        return cls(plugins={n: FakePlugin(n) for n in names})

    def _get(self, name: str) -> FakePlugin:
        try:
            return self.plugins[name]
        except KeyError:
            raise NotFoundError(f"no plugin named {name!r}") from None

    def _view(self, p: FakePlugin) -> PluginView:
        return PluginView(
            name=p.name,
            version=p.version,
            sha256="ab" * 32,
            state=p.state,
            memory_bytes=65536,
            stats=PluginStats(),
            signers=("dev",),
            limits={"memory_bytes": 16 << 20},
            instances=1,
        )

    def _note(self, *call: str) -> None:
        with self.lock:
            self.calls.append(call)

    def list_plugins(self) -> list[PluginView]:
        return [self._view(p) for p in self.plugins.values()]

    def get_plugin(self, name: str) -> PluginView:
        return self._view(self._get(name))

    def install(
        self,
        data: bytes,
        filename: str,
        actor: str,
        detached: bytes | None = None,
        wait_s: float = INSTALL_WAIT_S,
        attestation: bytes | None = None,
    ) -> InstallReport:
        if not data.startswith(SIGNED_MAGIC) and detached != b"good-signature":
            raise SignatureError("artifact is not signed", SignatureReason.UNSIGNED)
        name = data[len(SIGNED_MAGIC) :].decode() if detached is None else data.decode()
        self._note("install", filename, actor, f"wait={wait_s:g}")
        self.written[filename] = data
        self.plugins[name] = FakePlugin(name)
        if wait_s == 0:
            return InstallReport(name, "1.0.0", "ab" * 32, running=False)
        return InstallReport(name, "1.0.0", "ab" * 32, True, self._view(self.plugins[name]))

    def remove(self, name: str, actor: str) -> None:
        self._get(name)
        self._note("remove", name, actor)
        del self.plugins[name]

    def _set(self, name: str, actor: str, verb: str, state: str) -> None:
        plugin = self._get(name)
        self._note(verb, name, actor)
        plugin.state = state

    def pause(self, name: str, actor: str) -> None:
        if self._get(name).state != "running":
            raise ConflictError(f"{name} is not running")
        self._set(name, actor, "pause", "paused")

    def resume(self, name: str, actor: str) -> None:
        self._set(name, actor, "resume", "running")

    def restart(self, name: str, actor: str) -> None:
        self._set(name, actor, "restart", "running")

    def reset(self, name: str, actor: str) -> None:
        self._set(name, actor, "reset", "running")

    def retry(self, name: str, actor: str) -> PluginView | None:
        self._set(name, actor, "retry", "running")
        return self._view(self._get(name))

    def allow_downgrade(self, name: str, version: str, actor: str) -> None:
        self._get(name)
        self._note("allow_downgrade", name, version, actor)

    def invoke(
        self, name: str, data: bytes, wait_s: float | None = None, function: str = "handle"
    ) -> bytes:
        """Upper-cases ``data``; ``trap`` faults; ``refuse:TEXT`` is an application error
        (status 3, output TEXT; ``refuse-bin`` outputs bytes that are not UTF-8); a paused
        plugin fails at once unless ``wait_s`` (recorded in ``calls``) is given. A named
        function answers ``FUNCTION:`` + the upper-cased input (unlisted: BadRequest)."""
        plugin = self._get(name)
        if function != "handle":
            if function not in plugin.functions:
                raise BadRequestError(f"plugin {name} has no function {function!r}")
            self._note("invoke_fn", name, function)
            return function.encode() + b":" + data.upper()
        if wait_s is not None:
            self._note("invoke_wait", name, repr(wait_s))
        elif plugin.state == "paused":
            raise PluginPausedError(f"plugin {name!r} is paused")
        if plugin.state in ("failed", "quarantined", "stopped"):
            raise UnavailableError(f"plugin {name!r} is {plugin.state}")
        if self.gate is not None and not self.gate.wait(timeout=30):
            raise AssertionError("test gate never opened")
        if data == b"trap":
            raise PluginTrap("plugin ran out of fuel", TrapKind.OUT_OF_FUEL, "handle")
        if data.startswith((b"refuse:", b"refuse-bin")):
            out = data[7:] if data.startswith(b"refuse:") else b"\xff\x00binary"
            raise ApplicationError(
                f"plugin {name}: 'handle' returned status 3", status=3, output=out
            )
        return data.upper()

    def plugin_target(self, name: str, function: str | None) -> Target:
        plugin = self.plugins.get(name)
        if plugin is None:
            return Target(function=function)
        return Target(function, frozenset(plugin.signers), plugin.labels)

    def invoke_now(self, name: str, data: bytes, longest_s: float) -> bytes | None:
        """Runs ``invoke`` unless another invoke is in flight (one "instance"), the plugin
        is unknown or not running (as the daemon's gate: those wait or fail in ``invoke``) or
        its calls may take longer than ``longest_s`` (``call_timeout_s``)."""
        plugin = self.plugins.get(name)
        if plugin is None or plugin.state != "running" or self.call_timeout_s > longest_s:
            return None
        with self.lock:
            if self.running:
                return None
            self.running += 1
        try:
            return self.invoke(name, data)
        finally:
            with self.lock:
                self.running -= 1

    def reload(self, actor: str) -> dict[str, Any]:
        self._note("reload", actor)
        return {"applied": [], "restart_required": [], "restarted": [], "trusted_keys": []}

    def trusted_keys(self) -> dict[str, Any]:
        return {"keys": [], "revoked": [], "thresholds": {}}

    def rejected_files(self) -> list[dict[str, Any]]:
        return [
            {"file": "evil.wasm", "plugin": None, "version": None, "manifest": None,
             "reason": "unsigned", "message": "module is not signed"},
        ]  # fmt: skip

    def evidence(self, name: str) -> dict[str, Any]:
        self._get(name)
        return {"plugin": name, "calls": 3, "faults": 0, "promotable": True}

    def review(self, name: str, note: str, actor: str) -> dict[str, Any]:
        self._note("review", name, actor, note)
        return {"plugin": name, "version": "1.0.0", "next_due": "2027-03-05T00:00:00Z"}

    def staging_report(self) -> list[dict[str, Any]]:
        return []

    def reviews_overdue(self) -> list[dict[str, Any]]:
        return []

    def sources(self) -> list[dict[str, Any]]:
        return [{"name": "hello", "reference": "oci://127.0.0.1:5000/p/hello:1", "outcome": None}]

    def pull(self, name: str, actor: str) -> dict[str, Any]:
        if name != "hello":
            raise NotFoundError(f"no source named {name!r}")
        self._note("pull", name, actor)
        return {"name": name, "reference": "oci://127.0.0.1:5000/p/hello:1", "outcome": "synced"}

    def audit_entries(self, since: float | None) -> Iterable[dict[str, Any]]:
        return [e for e in self.audit_log if since is None or parse_rfc3339(e["ts"]) >= since]

    def audit_accept_gap(self, actor: str) -> dict[str, Any]:
        self._note("audit_accept_gap", actor)
        return {"accepted": {"kind": "truncated", "message": "fake", "seq": 3}, "anchor": None}

    def audit_rotate_key(self, actor: str) -> dict[str, Any]:
        self._note("audit_rotate_key", actor)
        return {"old_key": "a" * 64, "new_key": "b" * 64, "seq": 9}

    def audit_follow(
        self, from_seq: int | None, heartbeat_s: float | None = None
    ) -> Iterable[dict[str, Any] | None]:
        """The entries from ``from_seq``, one heartbeat, and the end (a real log goes on)."""
        yield from (e for e in self.audit_log if from_seq is None or e["seq"] >= from_seq)
        yield None

    def audit_verify(self) -> dict[str, Any]:
        n = len(self.audit_log)
        if self.broken_at is not None:
            return {"ok": False, "entries": n, "first_bad_seq": self.broken_at, "why": "hash"}
        return {"ok": True, "entries": n, "first_bad_seq": None, "why": ""}


@dataclass
class ListSink:
    """An AuditSink that keeps events in memory."""

    events: list[AuditEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, event: AuditEvent) -> None:
        with self.lock:
            self.events.append(event)

    def named(self, name: EventName) -> list[AuditEvent]:
        with self.lock:
            return [e for e in self.events if e.event is name]
