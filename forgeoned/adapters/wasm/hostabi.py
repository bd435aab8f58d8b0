"""The host side of ABI v1: what each `forgeone.*` import does, checked, bounded and counted.

:class:`HostCalls` holds the semantics of the host functions over a :class:`GuestMemory`
(the plugin's linear memory, or a bytearray in unit tests). It never raises for anything a
plugin can pass: a bad pointer, length, level or UTF-8 is ``-3``, a missing capability is
``-2`` plus a ``hostcall.denied`` audit event (at most 10 per function per minute, then one
summary: see ``core/denial_throttle``), an exhausted quota ``-4``; ``http_request`` adds
``-5`` … ``-8`` and hands the request to the plugin's :class:`HttpHook` (``adapters/http``).
Only a failure of the host itself (say the kv disk is gone) escapes, and the runtime turns
that into a trap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final

from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.http.hook import secret_reader
from forgeoned.adapters.wasm import hostabi_hooks as hooks
from forgeoned.adapters.wasm.hostservices import GuestMemory, HostServices
from forgeoned.core.abi import DENIED, INVALID, NOT_FOUND, QUOTA, HostOutcome
from forgeoned.core.clock import SystemClock
from forgeoned.core.denial_throttle import DenialSummary, denied_event, summary_event
from forgeoned.core.manifest import SECRET_RE
from forgeoned.core.plugin_metrics import MetricOp
from forgeoned.core.stats import PluginStats
from forgeoned.errors import KvQuotaError, OutboundRule

MAX_LOG_BYTES: Final = 64 * 1024
MAX_OUTPUT_BYTES: Final = 16 * 1024 * 1024
MAX_SECRET_BYTES: Final = 1024 * 1024
MAX_RANDOM_BYTES: Final = 1024 * 1024
_U32: Final = 0xFFFFFFFF
# Outcome labels as plain strings: an Enum's .value lookup is a measurable cost per host call.
OK: Final = HostOutcome.OK.value
_DENIED: Final = HostOutcome.DENIED.value
_INVALID: Final = HostOutcome.INVALID.value
_NOT_FOUND: Final = HostOutcome.NOT_FOUND.value
_QUOTA: Final = HostOutcome.QUOTA.value


class HostCalls:
    """The host functions of one instance. Arguments arrive as raw wasm i32 values."""

    def __init__(
        self, services: HostServices, memory: GuestMemory, stats: PluginStats | None = None
    ) -> None:
        """``stats``: where to count, written by one thread at a time (an instance's own
        counters: see core/stats.py); ``services.stats`` by default."""
        self.services = services
        self.memory = memory
        self._caps = services.capabilities
        stats = services.stats if stats is None else stats
        self._counts = counts = stats.hostcalls
        # A Counter is a dict subclass, so `counts[key] += 1` misses the interpreter's
        # exact-dict fast paths; its bound get/__setitem__ take about half the time.
        self._count_get = counts.get
        self._count_set = counts.__setitem__
        self.time_now_ms: Callable[[], int] = self._time_now_ms()
        self.output_buffer: bytearray | None = None  # set only while `handle` runs
        self._http = stats.http_requests
        # When the running wasm call must end (perf_counter time): its instance sets this, so
        # that a host call cannot outlive the call it serves.
        self.deadline: Callable[[], float] = lambda: time.perf_counter() + 3600.0

    # --- bookkeeping ------------------------------------------------------------------------

    def _done(self, function: str, outcome: str, result: int) -> int:
        key = (function, outcome)
        self._count_set(key, self._count_get(key, 0) + 1)
        return result

    def _invalid(self, function: str) -> int:
        return self._done(function, _INVALID, INVALID)

    def _deny(
        self,
        function: str,
        what: str,
        rule: OutboundRule | None = None,
        outcome: str = _DENIED,
        code: int = DENIED,
    ) -> int:
        svc = self.services
        self._counts[(function, outcome)] += 1  # counted first: an audit failure traps
        audit, due = svc.denials.deny(function, svc.clock.monotonic())
        for summary in due:
            self._audit_summary(summary)
        if audit:
            svc.audit.record(denied_event(svc.plugin, svc.version, function, what, rule, code))
        return code

    def _audit_summary(self, summary: DenialSummary) -> None:
        svc = self.services
        svc.audit.record(summary_event(svc.plugin, svc.version, summary))

    def report_suppressed(self, final: bool = False) -> None:
        """Audit the summaries that are due (``final``: all suppressed denials so far, when
        the instance goes away)."""
        svc = self.services
        denials = svc.denials
        for summary in denials.drain() if final else denials.due(svc.clock.monotonic()):
            self._audit_summary(summary)

    def _text(self, ptr: int, length: int) -> str | None:
        data = self.memory.read(ptr & _U32, length & _U32)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def _reply(self, function: str, value: bytes, buf_ptr: int, buf_len: int) -> int:
        """Copy ``value`` into the guest buffer if it fits; the result is its length."""
        if not self.memory.fits(buf_ptr & _U32, buf_len & _U32):
            return self._invalid(function)
        if len(value) <= (buf_len & _U32):
            self.memory.write(buf_ptr & _U32, value)
        return self._done(function, OK, len(value))

    # --- the ABI ----------------------------------------------------------------------------

    def log(self, level: int, ptr: int, length: int) -> int:
        if not self._caps.log:
            return self._deny("log", "")
        if not 0 <= level <= 4 or (length & _U32) > MAX_LOG_BYTES:
            return self._invalid("log")
        text = self._text(ptr, length)
        if text is None:
            return self._invalid("log")
        self.services.log(self.services.plugin, level, text)
        return self._done("log", OK, 0)

    def env_get(self, key_ptr: int, key_len: int, buf_ptr: int, buf_len: int) -> int:
        key = self._text(key_ptr, key_len)
        if key is None:
            return self._invalid("env_get")
        if key not in self._caps.env:
            return self._deny("env_get", key)
        value = self.services.env.get(key)
        if value is None:
            return self._done("env_get", _NOT_FOUND, NOT_FOUND)
        return self._reply("env_get", value.encode(), buf_ptr, buf_len)

    def secret_get(self, key_ptr: int, key_len: int, buf_ptr: int, buf_len: int) -> int:
        name = self._text(key_ptr, key_len)
        if name is None or not SECRET_RE.match(name):
            return self._invalid("secret_get")
        if name not in self._caps.secrets:
            return self._deny("secret_get", name)
        value = self._read_secret(name)
        if value is None:
            return self._done("secret_get", _NOT_FOUND, NOT_FOUND)
        return self._reply("secret_get", value, buf_ptr, buf_len)

    def _read_secret(self, name: str) -> bytes | None:
        if self.services.read_secret is not None:
            return self.services.read_secret(name)
        return secret_reader(self.services.secrets_dir, MAX_SECRET_BYTES)(name)

    def _time_now_ms(self) -> Callable[[], int]:
        """``time_now_ms``, resolved once: the cheapest host call, so the one where every
        lookup shows. The capability and the clock are fixed for an instance's life."""
        if not self._caps.clock:
            return lambda: self._deny("time_now_ms", "")
        get, put, key = self._count_get, self._count_set, ("time_now_ms", OK)
        if type(self.services.clock) is SystemClock:  # its wall() is time.time()
            time_ns = time.time_ns

            def system_ms() -> int:
                put(key, get(key, 0) + 1)
                return time_ns() // 1_000_000

            return system_ms
        wall = self.services.clock.wall

        def clock_ms() -> int:
            put(key, get(key, 0) + 1)
            return int(wall() * 1000)

        return clock_ms

    def random_fill(self, ptr: int, length: int) -> int:
        if not self._caps.random:
            return self._deny("random_fill", "")
        n = length & _U32
        fill = self.services.random_bytes or os.urandom
        if n > MAX_RANDOM_BYTES or not self.memory.write(ptr & _U32, fill(n)):
            return self._invalid("random_fill")
        return self._done("random_fill", OK, 0)

    def _kv_key(self, function: str, ptr: int, length: int) -> tuple[KvStore | None, bytes | None]:
        kv = self.services.kv
        if kv is None:
            return None, None
        key = self.memory.read(ptr & _U32, length & _U32)
        return kv, key if key and len(key) <= 1024 else None

    def kv_get(self, key_ptr: int, key_len: int, buf_ptr: int, buf_len: int) -> int:
        kv, key = self._kv_key("kv_get", key_ptr, key_len)
        if kv is None:
            return self._deny("kv_get", "")
        if key is None:
            return self._invalid("kv_get")
        value = kv.get(key)
        if value is None:
            return self._done("kv_get", _NOT_FOUND, NOT_FOUND)
        return self._reply("kv_get", value, buf_ptr, buf_len)

    def kv_set(self, key_ptr: int, key_len: int, val_ptr: int, val_len: int) -> int:
        kv, key = self._kv_key("kv_set", key_ptr, key_len)
        if kv is None:
            return self._deny("kv_set", "")
        value = self.memory.read(val_ptr & _U32, val_len & _U32)
        if key is None or value is None:
            return self._invalid("kv_set")
        try:
            kv.set(key, value)
        except KvQuotaError:
            return self._done("kv_set", _QUOTA, QUOTA)
        return self._done("kv_set", OK, 0)

    def kv_delete(self, key_ptr: int, key_len: int) -> int:
        kv, key = self._kv_key("kv_delete", key_ptr, key_len)
        if kv is None:
            return self._deny("kv_delete", "")
        if key is None:
            return self._invalid("kv_delete")
        if not kv.delete(key):
            return self._done("kv_delete", _NOT_FOUND, NOT_FOUND)
        return self._done("kv_delete", OK, 0)

    def output(self, ptr: int, length: int) -> int:
        buffer = self.output_buffer
        data = self.memory.read(ptr & _U32, length & _U32)
        if buffer is None or data is None:  # outside `handle` there is nothing to append to
            return self._invalid("output")
        if len(buffer) + len(data) > MAX_OUTPUT_BYTES:
            return self._done("output", _QUOTA, QUOTA)
        buffer += data
        return self._done("output", OK, 0)

    # --- provider hooks (hostabi_hooks) --------------------------------------------------------

    def config_get(self, key_ptr: int, key_len: int, buf_ptr: int, buf_len: int) -> int:
        return hooks.config_get(self, key_ptr, key_len, buf_ptr, buf_len)

    def metric_add(self, n_ptr: int, n_len: int, l_ptr: int, l_len: int, value: float) -> int:
        return hooks.metric(self, MetricOp.ADD, n_ptr, n_len, l_ptr, l_len, value)

    def metric_set(self, n_ptr: int, n_len: int, l_ptr: int, l_len: int, value: float) -> int:
        return hooks.metric(self, MetricOp.SET, n_ptr, n_len, l_ptr, l_len, value)

    def metric_observe(self, n_ptr: int, n_len: int, l_ptr: int, l_len: int, value: float) -> int:
        return hooks.metric(self, MetricOp.OBSERVE, n_ptr, n_len, l_ptr, l_len, value)

    # --- outbound HTTP (docs/plugin-authoring.md, "Outbound HTTP") ---------------------------

    def http_request(self, req_ptr: int, req_len: int, resp_ptr: int, resp_cap: int) -> int:
        hook, name = self.services.http, "http_request"
        data = self.memory.read(req_ptr & _U32, req_len & _U32)
        if data is None or not self.memory.fits(resp_ptr & _U32, resp_cap & _U32):
            self._http[_INVALID] = self._http.get(_INVALID, 0) + 1
            return self._invalid(name)
        if hook is None:
            self._http[_DENIED] = self._http.get(_DENIED, 0) + 1
            return self._deny(name, "", OutboundRule.NOT_GRANTED)
        result, response = hook.request(data, self.deadline() - time.perf_counter())
        outcome = result.outcome.value
        self._http[outcome] = self._http.get(outcome, 0) + 1
        if result.rule is not None:
            what = f"{result.destination}: {result.detail}" if result.destination else result.detail
            return self._deny(name, what, result.rule, outcome, result.code)
        if result.code < 0:
            return self._done(name, outcome, result.code)
        if len(response) <= (resp_cap & _U32):
            self.memory.write(resp_ptr & _U32, response)
        return self._done(name, OK, len(response))
