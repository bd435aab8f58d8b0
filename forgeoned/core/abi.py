"""ABI v1 (DESIGN.md section 3): the export and import tables, result codes and signatures.

Pure on purpose: what a plugin must export, which ``forgeone.*`` host functions it may import
(with their types and the capability each needs), and what those host functions answer. The
load-time checks of a compiled module against these tables are
:mod:`forgeoned.core.module_interface`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from forgeoned.core.manifest import Capabilities

IMPORT_MODULE: Final = "forgeone"
MEMORY_EXPORT: Final = "memory"

# Negative results of host functions (DESIGN.md section 3).
NOT_FOUND: Final = -1
DENIED: Final = -2
INVALID: Final = -3
QUOTA: Final = -4
# ... and of http_request only (docs/plugin-authoring.md, "Outbound HTTP").
REFUSED: Final = -5  # destination refused: address rules, a redirect hop not allowed
TIMEOUT: Final = -6  # timeout_ms or the wasm call's own deadline came first
TOO_LARGE: Final = -7  # request or response body over the operator's cap
CONNECTION: Final = -8  # name not resolved, connection/TLS error, malformed response


class LifecycleExport(enum.Enum):
    """The required `() -> i32` exports, in the order a plugin normally sees them."""

    INIT = "init"
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    UNLOAD = "unload"

    @property
    def status_reason(self) -> str:
        """The audit reason of a non-zero status of this export that is recorded but
        changes nothing (``stop_status``, ``unload_status``)."""
        return f"{self.value}_status"


class HostOutcome(enum.Enum):
    """The `outcome` label of a counted host call."""

    OK = "ok"
    DENIED = "denied"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    QUOTA = "quota"
    ERROR = "error"  # the host itself failed (the call traps with TrapKind.HOST_ERROR)
    REFUSED = "refused"  # http_request's -5 … -8
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    CONNECTION = "connection"


class Capability(enum.Enum):
    """Which capability a host function needs (None in the table: always allowed)."""

    LOG = "log"
    CLOCK = "clock"
    RANDOM = "random"
    ENV = "env"
    SECRETS = "secrets"
    KV = "kv"
    METRICS = "metrics"
    HTTP = "http"

    def granted(self, caps: Capabilities) -> bool:
        """Whether ``caps`` grants this capability at all (env/secret keys are checked per key)."""
        match self:
            case Capability.LOG:
                return caps.log
            case Capability.CLOCK:
                return caps.clock
            case Capability.RANDOM:
                return caps.random
            case Capability.ENV:
                return bool(caps.env)
            case Capability.SECRETS:
                return bool(caps.secrets)
            case Capability.KV:
                return caps.kv_quota_bytes is not None
            case Capability.METRICS:
                return caps.metrics
            case Capability.HTTP:
                return bool(caps.http)


@dataclass(frozen=True, slots=True)
class FuncSig:
    """A wasm function type with value types spelled as in WAT (`i32`, `i64`, …)."""

    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


@dataclass(frozen=True, slots=True)
class HostFunctionSpec:
    name: str
    sig: FuncSig
    capability: Capability | None


_I32: Final = "i32"
STATUS_SIG: Final = FuncSig((), (_I32,))
ALLOC_SIG: Final = FuncSig((_I32,), (_I32,))
HANDLE_SIG: Final = FuncSig((_I32, _I32), (_I32,))
_KEY_BUF: Final = FuncSig((_I32, _I32, _I32, _I32), (_I32,))
# metric_add/set/observe: (name_ptr, name_len, labels_ptr, labels_len, value f64) -> i32
METRIC_SIG: Final = FuncSig((_I32, _I32, _I32, _I32, "f64"), (_I32,))

HOST_FUNCTIONS: Final[dict[str, HostFunctionSpec]] = {
    spec.name: spec
    for spec in (
        HostFunctionSpec("log", FuncSig((_I32, _I32, _I32), (_I32,)), Capability.LOG),
        HostFunctionSpec("env_get", _KEY_BUF, Capability.ENV),
        HostFunctionSpec("secret_get", _KEY_BUF, Capability.SECRETS),
        HostFunctionSpec("time_now_ms", FuncSig((), ("i64",)), Capability.CLOCK),
        HostFunctionSpec("random_fill", FuncSig((_I32, _I32), (_I32,)), Capability.RANDOM),
        HostFunctionSpec("kv_get", _KEY_BUF, Capability.KV),
        HostFunctionSpec("kv_set", _KEY_BUF, Capability.KV),
        HostFunctionSpec("kv_delete", FuncSig((_I32, _I32), (_I32,)), Capability.KV),
        HostFunctionSpec("output", FuncSig((_I32, _I32), (_I32,)), None),
        # provider hooks (docs/plugin-hooks.md): appended, so the v1 table order stays
        HostFunctionSpec("config_get", _KEY_BUF, None),
        HostFunctionSpec("metric_add", METRIC_SIG, Capability.METRICS),
        HostFunctionSpec("metric_set", METRIC_SIG, Capability.METRICS),
        HostFunctionSpec("metric_observe", METRIC_SIG, Capability.METRICS),
        HostFunctionSpec("http_request", _KEY_BUF, Capability.HTTP),
    )
}


# the provider-hook imports (docs/plugin-hooks.md), beside the nine of DESIGN.md section 3
HOOK_FUNCTIONS: Final = frozenset({"config_get", "metric_add", "metric_set", "metric_observe"})
