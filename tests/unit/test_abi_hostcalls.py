"""Host-function semantics over a fake guest memory: results, bounds, capabilities, counters.

The same rules are exercised through real wasm in tests/integration/test_runtime_hostabi.py;
here each one is checked directly and exhaustively, with nothing but a bytearray behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.wasm.hostabi import MAX_OUTPUT_BYTES, HostCalls
from forgeoned.adapters.wasm.hostservices import HostServices
from forgeoned.core.abi import DENIED, INVALID, NOT_FOUND, QUOTA
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.manifest import Capabilities
from forgeoned.core.stats import PluginStats

SIZE = 4096


class FakeMemory:
    def __init__(self) -> None:
        self.data = bytearray(SIZE)

    def fits(self, ptr: int, length: int) -> bool:
        return ptr + length <= len(self.data)

    def read(self, ptr: int, length: int) -> bytes | None:
        return bytes(self.data[ptr : ptr + length]) if self.fits(ptr, length) else None

    def read_pair(self, p1: int, n1: int, p2: int, n2: int) -> tuple[bytes, bytes] | None:
        first, second = self.read(p1, n1), self.read(p2, n2)
        return None if first is None or second is None else (first, second)

    def write(self, ptr: int, data: bytes) -> bool:
        if not self.fits(ptr, len(data)):
            return False
        self.data[ptr : ptr + len(data)] = data
        return True

    def put(self, ptr: int, data: bytes) -> tuple[int, int]:
        self.data[ptr : ptr + len(data)] = data
        return ptr, len(data)


@dataclass
class Audit:
    events: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


@dataclass
class Rig:
    calls: HostCalls
    mem: FakeMemory
    audit: Audit
    stats: PluginStats
    logs: list[tuple[str, int, str]]


FULL = Capabilities(True, True, True, frozenset({"TZ"}), frozenset({"api-token"}), 32)


def rig(tmp_path: Path, caps: Capabilities = FULL) -> Rig:
    mem, audit, stats = FakeMemory(), Audit(), PluginStats()
    logs: list[tuple[str, int, str]] = []
    secrets = tmp_path / "creds"
    secrets.mkdir(exist_ok=True)
    (secrets / "api-token").write_bytes(b"tok")
    kv = KvStore(tmp_path / "kv", caps.kv_quota_bytes) if caps.kv_quota_bytes is not None else None
    services = HostServices(
        plugin="p",
        version="1.0.0",
        capabilities=caps,
        env={"TZ": "UTC", "HOME": "/root"},
        secrets_dir=secrets,
        kv=kv,
        audit=audit,
        log=lambda p, lvl, msg: logs.append((p, lvl, msg)),
        clock=ManualClock(now=0.0, wall_offset=1234.5678),
        stats=stats,
    )
    return Rig(HostCalls(services, mem), mem, audit, stats, logs)


def test_happy_paths(tmp_path: Path) -> None:
    r = rig(tmp_path)
    c, m = r.calls, r.mem
    assert c.log(2, *m.put(0, "héllo".encode())) == 0
    assert r.logs == [("p", 2, "héllo")]
    assert c.env_get(*m.put(0, b"TZ"), 100, 10) == 3
    assert m.data[100:103] == b"UTC"
    assert c.secret_get(*m.put(0, b"api-token"), 100, 10) == 3
    assert m.data[100:103] == b"tok"
    assert c.time_now_ms() == 1234567
    assert c.random_fill(200, 16) == 0
    assert c.kv_set(*m.put(0, b"k"), *m.put(10, b"value")) == 0
    assert c.kv_get(*m.put(0, b"k"), 300, 5) == 5
    assert m.data[300:305] == b"value"
    assert c.kv_delete(*m.put(0, b"k")) == 0
    assert c.kv_get(*m.put(0, b"k"), 300, 5) == NOT_FOUND
    c.output_buffer = bytearray()
    assert c.output(*m.put(0, b"ab")) == 0
    assert c.output(*m.put(0, b"cd")) == 0
    assert c.output_buffer == b"abcd"
    assert r.audit.events == []
    assert r.stats.hostcalls[("kv_get", "not_found")] == 1
    assert r.stats.hostcalls[("output", "ok")] == 2


def test_value_longer_than_buffer_reports_length_and_copies_nothing(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.mem.data[100:102] = b"##"
    assert r.calls.env_get(*r.mem.put(0, b"TZ"), 100, 2) == 3
    assert r.mem.data[100:102] == b"##"


def test_env_key_in_capabilities_but_unset_is_not_found(tmp_path: Path) -> None:
    caps = Capabilities(env=frozenset({"LANG"}))
    r = rig(tmp_path, caps)
    assert r.calls.env_get(*r.mem.put(0, b"LANG"), 100, 10) == NOT_FOUND
    assert r.calls.secret_get(*r.mem.put(0, b"api-token"), 100, 10) == DENIED


BAD = SIZE - 1  # a pointer whose 2-byte span runs past the end of memory
OOB_CALLS: dict[str, Callable[[HostCalls], int]] = {
    "log": lambda c: c.log(1, BAD, 2),
    "env_get key": lambda c: c.env_get(BAD, 2, 0, 1),
    "env_get buf": lambda c: c.env_get(0, 2, BAD, 2),
    "secret_get key": lambda c: c.secret_get(BAD, 9, 0, 1),
    "secret_get buf": lambda c: c.secret_get(0, 9, BAD, 4),
    "random_fill": lambda c: c.random_fill(BAD, 2),
    "kv_get key": lambda c: c.kv_get(BAD, 2, 0, 1),
    "kv_get buf": lambda c: c.kv_get(0, 1, BAD, 2),
    "kv_set key": lambda c: c.kv_set(BAD, 2, 0, 1),
    "kv_set value": lambda c: c.kv_set(0, 1, BAD, 2),
    "kv_delete": lambda c: c.kv_delete(BAD, 2),
    "output": lambda c: c.output(BAD, 2),
    "negative length": lambda c: c.log(1, 0, -1),
    "negative pointer": lambda c: c.random_fill(-8, 4),
}


@pytest.mark.parametrize("case", list(OOB_CALLS))
def test_out_of_bounds_is_invalid_and_changes_nothing(tmp_path: Path, case: str) -> None:
    r = rig(tmp_path)
    r.mem.put(0, b"TZapi-token")
    r.mem.put(0, b"TZ" if "env" in case else b"api-token" if "secret" in case else b"k")
    r.calls.kv_set(*r.mem.put(2000, b"k"), *r.mem.put(2010, b"v"))  # an existing key
    r.calls.output_buffer = bytearray()
    before = bytes(r.mem.data)
    assert OOB_CALLS[case](r.calls) == INVALID
    assert bytes(r.mem.data) == before
    assert r.calls.output_buffer == b""
    assert r.calls.kv_get(*r.mem.put(2000, b"k"), 2020, 4) == 1  # kv unchanged
    assert r.logs == [] and r.audit.events == []
    assert sum(n for (f, o), n in r.stats.hostcalls.items() if o == "invalid") == 1


@pytest.mark.parametrize(
    "case",
    [
        lambda c: c.log(5, 0, 1),  # level out of range
        lambda c: c.log(-1, 0, 1),
        lambda c: c.log(1, 3000, 2),  # invalid UTF-8
        lambda c: c.env_get(3000, 2, 0, 1),
        lambda c: c.secret_get(3000, 2, 0, 1),
        lambda c: c.secret_get(3100, 2, 0, 1),  # "..": not a credential name
        lambda c: c.kv_set(0, 0, 0, 1),  # empty key
        lambda c: c.output(0, 1),  # output outside handle
    ],
)
def test_other_invalid_arguments(tmp_path: Path, case: Callable[[HostCalls], int]) -> None:
    r = rig(tmp_path)
    r.mem.put(3000, b"\xff\xfe")
    r.mem.put(3100, b"..")
    assert case(r.calls) == INVALID
    assert r.logs == [] and r.audit.events == []


DENIALS: dict[str, tuple[Capabilities, Callable[[HostCalls], int], str]] = {
    "log": (Capabilities(), lambda c: c.log(1, 0, 1), ""),
    "time_now_ms": (Capabilities(), lambda c: c.time_now_ms(), ""),
    "random_fill": (Capabilities(), lambda c: c.random_fill(0, 4), ""),
    "env_get": (Capabilities(env=frozenset({"TZ"})), lambda c: c.env_get(10, 4, 0, 8), "HOME"),
    "secret_get": (Capabilities(), lambda c: c.secret_get(20, 9, 0, 8), "api-token"),
    "kv_get": (Capabilities(), lambda c: c.kv_get(0, 1, 0, 8), ""),
    "kv_set": (Capabilities(), lambda c: c.kv_set(0, 1, 0, 1), ""),
    "kv_delete": (Capabilities(), lambda c: c.kv_delete(0, 1), ""),
}


@pytest.mark.parametrize("function", list(DENIALS))
def test_denied_capability(tmp_path: Path, function: str) -> None:
    caps, call, target = DENIALS[function]
    r = rig(tmp_path, caps)
    r.mem.put(10, b"HOME")
    r.mem.put(20, b"api-token")
    before = bytes(r.mem.data)
    assert call(r.calls) == DENIED
    assert bytes(r.mem.data) == before
    assert r.stats.hostcalls == {(function, "denied"): 1}
    [event] = r.audit.events
    assert event.event is EventName.HOSTCALL_DENIED
    assert (event.plugin, event.version, event.reason) == ("p", "1.0.0", "capability")
    assert event.details == {"function": function, "target": target}
    assert function in event.message


def test_kv_quota(tmp_path: Path) -> None:
    r = rig(tmp_path)  # quota 32 bytes
    m = r.mem
    assert r.calls.kv_set(*m.put(0, b"a"), *m.put(10, b"x" * 20)) == 0
    assert r.calls.kv_set(*m.put(0, b"b"), *m.put(100, b"y" * 20)) == QUOTA
    assert r.stats.hostcalls[("kv_set", "quota")] == 1
    assert r.calls.kv_get(*m.put(0, b"b"), 200, 30) == NOT_FOUND  # nothing half-written
    assert r.calls.kv_get(*m.put(0, b"a"), 200, 30) == 20  # the old value kept
    # replacing a value counts only the difference against the quota
    assert r.calls.kv_set(*m.put(0, b"a"), *m.put(10, b"z" * 31)) == 0


def test_output_cap(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.calls.output_buffer = bytearray(MAX_OUTPUT_BYTES - 1)
    assert r.calls.output(0, 2) == QUOTA
    assert len(r.calls.output_buffer) == MAX_OUTPUT_BYTES - 1
    assert r.calls.output(0, 1) == 0


def test_secrets_never_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("api-token", "from-env")
    r = rig(tmp_path)
    (tmp_path / "creds" / "api-token").unlink()
    assert r.calls.secret_get(*r.mem.put(0, b"api-token"), 100, 64) == NOT_FOUND


def test_secret_symlink_is_not_followed(tmp_path: Path) -> None:
    r = rig(tmp_path)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not a credential")
    (tmp_path / "creds" / "api-token").unlink()
    (tmp_path / "creds" / "api-token").symlink_to(target)
    assert r.calls.secret_get(*r.mem.put(0, b"api-token"), 100, 64) == NOT_FOUND
