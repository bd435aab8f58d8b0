"""What the host functions of one plugin instance work on: its services and its memory.

:class:`HostServices` is everything a plugin version's host functions may touch (its effective
capabilities, the env values and secrets it may read, its kv store, the audit sink and log,
the clock, its counters, its provider hooks and outbound HTTP hook); the daemon builds one per
loaded version (``daemon/host_services.py``), the sandbox and the benchmarks their own.
:class:`GuestMemory` is the plugin's linear memory as :class:`~.hostabi.HostCalls` reads and
writes it: ``hostlink.GuestMemoryView`` over a wasmtime memory, or a bytearray in unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from forgeoned.adapters.files.kv import KvStore
from forgeoned.adapters.http.hook import HttpHook
from forgeoned.core.denial_throttle import DenialThrottle
from forgeoned.core.manifest import Capabilities
from forgeoned.core.plugin_metrics import PluginMetricSet
from forgeoned.core.ports import AuditSink, Clock
from forgeoned.core.stats import PluginStats


@dataclass(frozen=True, slots=True)
class HostServices:
    """Everything the host functions of one plugin instance may touch."""

    plugin: str
    version: str
    capabilities: Capabilities  # EFFECTIVE capabilities (manifest ∩ operator policy)
    env: Mapping[str, str]  # values env_get may return (only keys in capabilities.env)
    secrets_dir: Path | None  # $CREDENTIALS_DIRECTORY or a configured dir; never os.environ
    kv: KvStore | None  # None when the plugin has no kv capability
    audit: AuditSink
    log: Callable[[str, int, str], None]  # (plugin, level 0..4, message)
    clock: Clock
    stats: PluginStats
    # Which denials are audited. One per HostServices, i.e. shared by the instances of one
    # loaded plugin version; pass one explicitly to share it more widely.
    denials: DenialThrottle = field(default_factory=DenialThrottle)
    # provider hooks (docs/plugin-hooks.md): the effective config as text, the declared metrics
    config: Mapping[str, str] = field(default_factory=dict)
    metrics: PluginMetricSet | None = None
    functions: frozenset[str] = frozenset()  # the manifest's named functions
    http: HttpHook | None = None  # None when no outbound origin is granted
    # Where random bytes and secrets come from (``forgeonectl run --record/--replay`` wraps
    # them); None: os.urandom, and the file ``secrets_dir/NAME``.
    random_bytes: Callable[[int], bytes] | None = None
    read_secret: Callable[[str], bytes | None] | None = None


class GuestMemory(Protocol):
    """Bounds-checked access to a plugin's linear memory; None/False when out of bounds."""

    def read(self, ptr: int, length: int) -> bytes | None: ...

    def write(self, ptr: int, data: bytes) -> bool: ...

    def fits(self, ptr: int, length: int) -> bool: ...

    def read_pair(self, p1: int, n1: int, p2: int, n2: int) -> tuple[bytes, bytes] | None:
        """Two reads at once (a metric call's name and labels); None if either is out of
        bounds."""
        ...
